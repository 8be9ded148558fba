#include "server/http/chat_protocol.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace mcserve::http {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

absl::Status Bad(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", what));
}

// The messages as the template sees them: role, content (a string) and,
// when given, name, in that order.
absl::StatusOr<ordered_json> ReadMessages(const json& body) {
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) {
    return Bad("messages", "is required: a non-empty list of {role, content}");
  }
  if (it->size() > static_cast<size_t>(kMaxChatMessages)) {
    return Bad("messages",
               absl::StrCat("has ", it->size(), " entries; the limit is ", kMaxChatMessages));
  }
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string field = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return Bad(field, "must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return Bad(field + ".role", "must be a string");
    ordered_json msg = {{"role", role->get<std::string>()}};
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      msg["content"] = nullptr;
    } else if (content->is_string()) {
      msg["content"] = content->get<std::string>();
    } else if (content->is_array()) {
      std::string text;
      for (const json& part : *content) {
        if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          return Bad(field + ".content",
                     "parts other than {\"type\": \"text\", \"text\"} are not supported");
        }
        text += part["text"].get<std::string>();
      }
      msg["content"] = text;
    } else {
      return Bad(field + ".content", "must be a string or a list of text parts");
    }
    if (auto name = m.find("name"); name != m.end() && name->is_string()) {
      msg["name"] = name->get<std::string>();
    }
    out.push_back(std::move(msg));
  }
  return out;
}

// The field's value, or null when absent.
json Field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() ? json() : *it;
}

}  // namespace

absl::StatusOr<CompletionCall> ParseChatRequest(absl::string_view text,
                                                const ModelChatTemplate& chat) {
  ASSIGN_OR_RETURN(json body, ParseBody(text));
  ASSIGN_OR_RETURN(ordered_json messages, ReadMessages(body));
  bool generation_prompt = true;
  if (const json g = Field(body, "add_generation_prompt"); !g.is_null()) {
    if (!g.is_boolean()) return Bad("add_generation_prompt", "must be a boolean");
    generation_prompt = g.get<bool>();
  }
  if (body.contains("echo")) return Bad("echo", "is not supported by chat completions");
  if (body.contains("prompt")) return Bad("prompt", "is for /v1/completions; send messages");
  const ordered_json context = {{"messages", std::move(messages)},
                                {"bos_token", chat.bos_token},
                                {"eos_token", chat.eos_token},
                                {"add_generation_prompt", generation_prompt}};
  absl::StatusOr<std::string> prompt = chat.tmpl.Render(context);
  if (!prompt.ok()) {
    return Bad("messages",
               absl::StrCat("refused by the chat template: ", prompt.status().message()));
  }
  std::string rendered = *std::move(prompt);
  if (!chat.bos_token.empty() && absl::StartsWith(rendered, chat.bos_token)) {
    rendered.erase(0, chat.bos_token.size());  // the server adds BOS
  }

  // The rest is a completions request: max_completion_tokens is max_tokens
  // (neither: the server's default), logprobs a flag with top_logprobs.
  json completion = std::move(body);
  json max_tokens = Field(completion, "max_completion_tokens");
  if (max_tokens.is_null()) max_tokens = Field(completion, "max_tokens");
  const json logprobs_flag = Field(completion, "logprobs");
  const json top_logprobs = Field(completion, "top_logprobs");
  for (const char* key : {"messages", "add_generation_prompt", "logprobs", "top_logprobs",
                          "max_completion_tokens", "max_tokens"}) {
    completion.erase(key);
  }
  completion["prompt"] = std::move(rendered);
  if (!max_tokens.is_null()) completion["max_tokens"] = max_tokens;
  bool logprobs = false;
  if (!logprobs_flag.is_null()) {
    if (!logprobs_flag.is_boolean()) {
      return Bad("logprobs", "must be a boolean (top_logprobs: how many)");
    }
    logprobs = logprobs_flag.get<bool>();
  }
  if (!top_logprobs.is_null()) {
    if (!logprobs) return Bad("top_logprobs", "needs logprobs: true");
    completion["logprobs"] = top_logprobs;
  } else if (logprobs) {
    completion["logprobs"] = 0;
  }
  ASSIGN_OR_RETURN(CompletionCall call, ParseCompletionBody(completion));
  if (max_tokens.is_null()) {
    call.request.mutable_sampling_params()->clear_max_tokens();  // the server's default
  }
  return call;
}

json ChatLogprobsJson(const tokenizer::Tokenizer& tok,
                      const std::vector<engine::TokenOut>& tokens) {
  auto entry = [&tok](int32_t id, float logprob) {
    const std::string bytes = tok.TokenBytes(id);
    json b = json::array();
    for (unsigned char c : bytes) b.push_back(static_cast<int>(c));
    return json{{"token", TokenString(tok, id)},
                {"logprob", std::max(logprob, -9999.0f)},
                {"bytes", std::move(b)}};
  };
  json out = json::array();
  for (const engine::TokenOut& t : tokens) {
    json e = entry(t.id, t.logprob);
    json top = json::array();
    for (const auto& [id, lp] : t.top) top.push_back(entry(id, lp));
    e["top_logprobs"] = std::move(top);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace mcserve::http
