#include "server/http/openai_protocol.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "server/util/status_macros.h"
#include "server/util/utf8.h"

namespace mcserve::http {
namespace {

using nlohmann::json;

absl::Status Bad(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", what));
}

// Reads optional field `name` of `body` into `out` when present and not null.
template <typename T>
absl::Status Read(const json& body, const char* name, T& out);

template <>
absl::Status Read(const json& body, const char* name, bool& out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return Bad(name, "must be true or false");
  out = it->get<bool>();
  return absl::OkStatus();
}

template <>
absl::Status Read(const json& body, const char* name, double& out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return Bad(name, "must be a number");
  out = it->get<double>();
  return absl::OkStatus();
}

template <>
absl::Status Read(const json& body, const char* name, int64_t& out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) return Bad(name, "must be an integer");
  out = it->get<int64_t>();
  return absl::OkStatus();
}

template <>
absl::Status Read(const json& body, const char* name, std::string& out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return Bad(name, "must be a string");
  out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadUint32(const json& body, const char* name, bool* present, uint32_t& out) {
  int64_t v = -1;
  if (absl::Status s = Read(body, name, v); !s.ok()) return s;
  *present = v != -1 || (body.contains(name) && !body[name].is_null());
  if (!*present) return absl::OkStatus();
  if (v < 0 || v > UINT32_MAX) return Bad(name, absl::StrCat("must be >= 0, got ", v));
  out = static_cast<uint32_t>(v);
  return absl::OkStatus();
}

bool IsTokenList(const json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const json& x : v) {
    if (!x.is_number_integer()) return false;
  }
  return true;
}

absl::Status ReadPrompt(const json& body, v1::GenerateRequest& req) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return Bad("prompt", "is required");
  const json* p = &*it;
  if (p->is_array() && !IsTokenList(*p)) {
    if (p->size() != 1) {
      return Bad("prompt",
                 absl::StrCat("holds ", p->size(), " prompts; this server takes one per request"));
    }
    p = &(*p)[0];
  }
  if (p->is_string()) {
    req.set_text(p->get<std::string>());
    return absl::OkStatus();
  }
  if (IsTokenList(*p)) {
    for (const json& id : *p) {
      const int64_t v = id.get<int64_t>();
      if (v < 0 || v > UINT32_MAX) return Bad("prompt", absl::StrCat("holds token id ", v));
      req.mutable_token_ids()->add_ids(static_cast<uint32_t>(v));
    }
    return absl::OkStatus();
  }
  return Bad("prompt", "must be a string or a list of token ids");
}

absl::Status ReadStop(const json& body, v1::SamplingParams& sp) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (it->is_string()) {
    sp.add_stop(it->get<std::string>());
    return absl::OkStatus();
  }
  if (!it->is_array()) return Bad("stop", "must be a string or a list of strings");
  for (const json& s : *it) {
    if (!s.is_string()) return Bad("stop", "must be a string or a list of strings");
    sp.add_stop(s.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ReadIds(const json& body, const char* name,
                     google::protobuf::RepeatedField<uint32_t>& out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return Bad(name, "must be a list of token ids");
  for (const json& id : *it) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > UINT32_MAX) {
      return Bad(name, "must be a list of token ids");
    }
    out.Add(static_cast<uint32_t>(id.get<int64_t>()));
  }
  return absl::OkStatus();
}

absl::Status ReadLogitBias(const json& body, v1::SamplingParams& sp) {
  auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return Bad("logit_bias", "must map token ids to biases");
  for (const auto& [key, value] : it->items()) {
    uint32_t id = 0;
    if (!absl::SimpleAtoi(key, &id) || !value.is_number()) {
      return Bad("logit_bias", absl::StrCat("must map token ids to biases (got key '", key, "')"));
    }
    (*sp.mutable_logit_bias())[id] = value.get<float>();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<json> ParseBody(absl::string_view text) {
  bool too_deep = false;
  json body = json::parse(
      text.begin(), text.end(),
      [&too_deep](int depth, json::parse_event_t event, json&) {
        if ((event == json::parse_event_t::object_start ||
             event == json::parse_event_t::array_start) &&
            depth >= kMaxJsonDepth) {
          too_deep = true;
          return false;  // not kept
        }
        return !too_deep;
      },
      /*allow_exceptions=*/false);
  if (too_deep) {
    return absl::InvalidArgumentError(
        absl::StrCat("body nests deeper than ", kMaxJsonDepth, " levels"));
  }
  if (body.is_discarded() || !body.is_object()) {
    return absl::InvalidArgumentError("body must be a JSON object");
  }
  return body;
}

absl::StatusOr<CompletionCall> ParseCompletionRequest(absl::string_view text) {
  ASSIGN_OR_RETURN(json body, ParseBody(text));
  return ParseCompletionBody(body);
}

absl::StatusOr<CompletionCall> ParseCompletionBody(const json& body) {
  CompletionCall call;
  v1::GenerateRequest& req = call.request;
  v1::SamplingParams& sp = *req.mutable_sampling_params();
  RETURN_IF_ERROR(Read(body, "model", call.model));
  RETURN_IF_ERROR(ReadPrompt(body, req));
  if (body.contains("suffix") && !body["suffix"].is_null()) {
    return Bad("suffix", "is not supported");
  }
  bool has = false;
  uint32_t u = 16;  // OpenAI's default max_tokens
  RETURN_IF_ERROR(ReadUint32(body, "max_tokens", &has, u));
  sp.set_max_tokens(u);
  double d = 0;
  if (body.contains("temperature") && !body["temperature"].is_null()) {
    RETURN_IF_ERROR(Read(body, "temperature", d));
    sp.set_temperature(static_cast<float>(d));
  }
  if (body.contains("top_p") && !body["top_p"].is_null()) {
    RETURN_IF_ERROR(Read(body, "top_p", d));
    sp.set_top_p(static_cast<float>(d));
  }
  int64_t top_k = 0;  // vLLM: 0 or -1 is off
  RETURN_IF_ERROR(Read(body, "top_k", top_k));
  if (top_k < -1) return Bad("top_k", absl::StrCat("must be -1, 0 or positive, got ", top_k));
  sp.set_top_k(top_k > 0 ? static_cast<uint32_t>(top_k) : 0);
  int64_t seed = -1;
  if (body.contains("seed") && !body["seed"].is_null()) {
    RETURN_IF_ERROR(Read(body, "seed", seed));
    sp.set_seed(static_cast<uint64_t>(seed));
  }
  RETURN_IF_ERROR(ReadStop(body, sp));
  RETURN_IF_ERROR(ReadIds(body, "stop_token_ids", *sp.mutable_stop_token_ids()));
  bool flag = false;
  RETURN_IF_ERROR(Read(body, "ignore_eos", flag));
  sp.set_ignore_eos(flag);
  flag = false;
  RETURN_IF_ERROR(Read(body, "include_stop_str_in_output", flag));
  sp.set_include_stop_str_in_output(flag);
  d = 0;
  RETURN_IF_ERROR(Read(body, "presence_penalty", d));
  sp.set_presence_penalty(static_cast<float>(d));
  d = 0;
  RETURN_IF_ERROR(Read(body, "frequency_penalty", d));
  sp.set_frequency_penalty(static_cast<float>(d));
  if (body.contains("repetition_penalty") && !body["repetition_penalty"].is_null()) {
    RETURN_IF_ERROR(Read(body, "repetition_penalty", d));
    sp.set_repetition_penalty(static_cast<float>(d));
  }
  u = 0;
  RETURN_IF_ERROR(ReadUint32(body, "min_tokens", &has, u));
  sp.set_min_tokens(u);
  RETURN_IF_ERROR(ReadLogitBias(body, sp));
  if (body.contains("logprobs") && !body["logprobs"].is_null()) {
    u = 0;
    RETURN_IF_ERROR(ReadUint32(body, "logprobs", &has, u));
    call.logprobs = static_cast<int32_t>(std::min<uint32_t>(u, 1u << 20));
    req.set_return_logprobs(true);
    req.set_top_logprobs(u);
  }
  RETURN_IF_ERROR(Read(body, "echo", call.echo));
  // echo with logprobs lists the prompt's tokens too: score them.
  if (call.echo && call.logprobs >= 0) req.set_prompt_logprobs(u);
  int64_t n = 1;
  RETURN_IF_ERROR(Read(body, "n", n));
  if (n < 1) return Bad("n", absl::StrCat("must be at least 1, got ", n));
  int64_t best_of = n;
  RETURN_IF_ERROR(Read(body, "best_of", best_of));
  if (best_of != n) return Bad("best_of", "other than n is not supported");
  call.n = static_cast<int32_t>(std::min<int64_t>(n, 1 << 20));
  RETURN_IF_ERROR(Read(body, "stream", call.stream));
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("stream_options", "must be an object");
    RETURN_IF_ERROR(Read(*it, "include_usage", call.include_usage));
  }
  RETURN_IF_ERROR(Read(body, "user", call.user));
  std::string session;
  RETURN_IF_ERROR(Read(body, "session_id", session));
  req.set_session_id(session);
  return call;
}

std::string OpenAiFinishReason(engine::FinishReason r) {
  switch (r) {
    case engine::FinishReason::kLength:
      return "length";
    case engine::FinishReason::kStop:
    case engine::FinishReason::kEos:
      return "stop";
    case engine::FinishReason::kCancelled:
    case engine::FinishReason::kAborted:
      return "abort";
    case engine::FinishReason::kNone:
      break;
  }
  return "";
}

std::string TokenString(const tokenizer::Tokenizer& tok, int32_t id) {
  const std::string bytes = tok.TokenBytes(id);
  if (IsValidUtf8(bytes)) return bytes;
  std::string out = "bytes:";
  for (unsigned char c : bytes) absl::StrAppendFormat(&out, "\\x%02x", c);
  return out;
}

nlohmann::json LogprobsJson(const tokenizer::Tokenizer& tok,
                            const std::vector<engine::TokenOut>& tokens, size_t offset) {
  json strings = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (const engine::TokenOut& t : tokens) {
    const std::string s = TokenString(tok, t.id);
    strings.push_back(s);
    lps.push_back(std::max(t.logprob, -9999.0f));
    json top = json::object();
    for (const auto& [id, lp] : t.top) top[TokenString(tok, id)] = std::max(lp, -9999.0f);
    tops.push_back(std::move(top));
    offsets.push_back(offset);
    offset += s.size();
  }
  return json{{"tokens", strings},
              {"token_logprobs", lps},
              {"top_logprobs", tops},
              {"text_offset", offsets}};
}

HttpError ErrorFor(const absl::Status& s, int http_status) {
  HttpError e;
  std::string type = "internal_server_error";
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      e.status = 400;
      type = "invalid_request_error";
      break;
    case absl::StatusCode::kUnauthenticated:
      e.status = 401;
      type = "authentication_error";
      break;
    case absl::StatusCode::kPermissionDenied:
      e.status = 403;
      type = "permission_error";
      break;
    case absl::StatusCode::kNotFound:
      e.status = 404;
      type = "not_found_error";
      break;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      e.status = 409;
      type = "conflict_error";
      break;
    case absl::StatusCode::kResourceExhausted:
      e.status = 429;
      type = "rate_limit_error";
      break;
    case absl::StatusCode::kUnavailable:
      e.status = 503;
      type = "service_unavailable";
      break;
    case absl::StatusCode::kUnimplemented:
      e.status = 501;
      type = "not_implemented";
      break;
    default:
      e.status = 500;
  }
  const std::string message = absl::StrReplaceAll(s.message(), {{"sampling_params.", ""}});
  json param = nullptr;
  if (e.status == 400) {
    // The request field the message starts with, by its HTTP name.
    const std::string first = message.substr(0, message.find_first_of(" .["));
    static const auto* const kFields = new absl::flat_hash_map<std::string, std::string>{
        {"model", "model"},
        {"messages", "messages"},
        {"add_generation_prompt", "add_generation_prompt"},
        {"prompt", "prompt"},
        {"text", "prompt"},
        {"token_ids", "prompt"},
        {"suffix", "suffix"},
        {"max_tokens", "max_tokens"},
        {"temperature", "temperature"},
        {"top_p", "top_p"},
        {"top_k", "top_k"},
        {"seed", "seed"},
        {"stop", "stop"},
        {"stop_token_ids", "stop_token_ids"},
        {"ignore_eos", "ignore_eos"},
        {"include_stop_str_in_output", "include_stop_str_in_output"},
        {"presence_penalty", "presence_penalty"},
        {"frequency_penalty", "frequency_penalty"},
        {"repetition_penalty", "repetition_penalty"},
        {"min_tokens", "min_tokens"},
        {"logit_bias", "logit_bias"},
        {"logprobs", "logprobs"},
        {"top_logprobs", "logprobs"},
        {"echo", "echo"},
        {"n", "n"},
        {"best_of", "best_of"},
        {"stream", "stream"},
        {"stream_options", "stream_options"},
        {"user", "user"},
        {"session_id", "session_id"},
        {"body", "body"}};
    if (auto it = kFields->find(first); it != kFields->end()) param = it->second;
  }
  if (http_status != 0) e.status = http_status;
  e.body =
      json{{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", e.status}}}}
          .dump(-1, ' ', false, json::error_handler_t::replace);
  return e;
}

}  // namespace mcserve::http
