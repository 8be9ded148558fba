#include "server/http/response_writer.h"

#include <httplib.h>

#include <optional>
#include <utility>
#include <vector>

#include "server/http/chat_protocol.h"
#include "server/http/openai_protocol.h"

namespace mcserve::http {
namespace {

using nlohmann::json;

// One completion's state as its updates are written.
struct Choice {
  std::string echo;                               // not yet written
  std::vector<engine::TokenOut> prompt_logprobs;  // n > 1: the prefill's, not yet written
  bool started = false;                           // chat: the role was sent
  std::string text;
  json logprobs;          // all so far: the completions API's lists, or the chat API's content
  size_t text_bytes = 0;  // of the text, for the completions API's text_offset
  engine::FinishReason reason = engine::FinishReason::kNone;
  std::optional<std::string> stop_str;
  std::optional<int32_t> stop_id;
  engine::Usage usage;
};

json StopReason(const Choice& c) {
  if (c.stop_str) return *c.stop_str;
  if (c.stop_id) return *c.stop_id;
  return nullptr;
}

// The choice object of update `u` of completion `index` (a streamed
// chunk's), and `c` brought up to date.
json Part(const ResponseShape& shape, const tokenizer::Tokenizer& tok, Choice& c, size_t index,
          const engine::GenerateUpdate& u) {
  json choice = {{"index", index}};
  json lp = nullptr;
  if (shape.chat) {
    json delta = {{"content", u.text}};
    if (!std::exchange(c.started, true)) delta["role"] = "assistant";
    choice["delta"] = std::move(delta);
    if (shape.logprobs) {
      lp = json{{"content", ChatLogprobsJson(tok, u.tokens)}};
      if (c.logprobs.is_null()) c.logprobs = json::array();
      for (const json& t : lp["content"]) c.logprobs.push_back(t);
    }
    c.text += u.text;
  } else {
    const std::string prefix = std::exchange(c.echo, "");
    choice["text"] = prefix + u.text;
    if (shape.logprobs) {
      // echo: the prompt's scored tokens lead the first chunk's lists.
      std::vector<engine::TokenOut> scored = std::exchange(c.prompt_logprobs, {});
      if (scored.empty()) scored = u.prompt_logprobs;
      lp = LogprobsJson(tok, scored, c.text_bytes);
      json generated = LogprobsJson(tok, u.tokens, c.text_bytes + prefix.size());
      for (auto it = generated.begin(); it != generated.end(); ++it) {
        for (json& v : it.value()) lp[it.key()].push_back(std::move(v));
      }
      if (c.logprobs.is_null()) c.logprobs = json::object();
      for (auto it = lp.begin(); it != lp.end(); ++it) {
        for (const json& v : it.value()) c.logprobs[it.key()].push_back(v);
      }
    }
    c.text += prefix + u.text;
    c.text_bytes += prefix.size();
    for (const engine::TokenOut& t : u.tokens) c.text_bytes += TokenString(tok, t.id).size();
  }
  choice["logprobs"] = std::move(lp);
  if (u.finished) {
    c.reason = u.reason;
    c.stop_str = u.matched_stop_str;
    c.stop_id = u.matched_token_id;
    c.usage = u.usage;
  }
  choice["finish_reason"] = u.finished ? json(OpenAiFinishReason(u.reason)) : json(nullptr);
  choice["stop_reason"] = u.finished ? StopReason(c) : json(nullptr);
  return choice;
}

// The whole choice, for a response that is not streamed.
json Whole(const ResponseShape& shape, const Choice& c, size_t index) {
  json choice = {{"index", index}};
  if (shape.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    choice["logprobs"] = shape.logprobs
                             ? json{{"content", c.logprobs.is_null() ? json::array() : c.logprobs}}
                             : json(nullptr);
  } else {
    choice["text"] = c.text;
    choice["logprobs"] = shape.logprobs ? c.logprobs : json(nullptr);
  }
  choice["finish_reason"] = OpenAiFinishReason(c.reason);
  choice["stop_reason"] = StopReason(c);
  return choice;
}

json UsageJson(const CompletionRuns& runs, const std::vector<Choice>& choices) {
  int64_t completion = 0;
  for (const Choice& c : choices) completion += c.usage.completion_tokens;
  const int64_t prompt = runs.shared_prompt_tokens() >= 0 ? runs.shared_prompt_tokens()
                                                          : choices[0].usage.prompt_tokens;
  return json{{"prompt_tokens", prompt},
              {"completion_tokens", completion},
              {"total_tokens", prompt + completion}};
}

}  // namespace

void SendError(httplib::Response& res, const absl::Status& s, int http_status) {
  HttpError e = ErrorFor(s, http_status);
  res.status = e.status;
  if (e.status == 429 || e.status == 503) res.set_header("Retry-After", "1");
  res.set_content(e.body, "application/json");
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void WriteCompletions(const ResponseShape& shape, std::shared_ptr<CompletionRuns> runs,
                      const tokenizer::Tokenizer& tok, httplib::Response& res) {
  auto choices = std::make_shared<std::vector<Choice>>(runs->size());
  for (Choice& c : *choices) {
    c.echo = shape.echo;
    c.prompt_logprobs = runs->shared_prompt_logprobs();
  }
  const json head = {{"id", shape.id}, {"created", shape.created}, {"model", shape.model}};

  if (!shape.stream) {
    json out = json::array();
    for (size_t i = 0; i < runs->size(); ++i) {
      for (;;) {
        engine::GenerateUpdate u = runs->Next(i);
        if (!u.status.ok()) return SendError(res, u.status);  // the runs drop the others
        Part(shape, tok, (*choices)[i], i, u);
        if (u.finished) break;
      }
      out.push_back(Whole(shape, (*choices)[i], i));
    }
    json body = head;
    body["object"] = shape.chat ? "chat.completion" : "text_completion";
    body["choices"] = std::move(out);
    body["usage"] = UsageJson(*runs, *choices);
    res.set_content(Dump(body), "application/json");
    return;
  }

  const std::string object = shape.chat ? "chat.completion.chunk" : "text_completion";
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream; charset=utf-8", [shape, runs = std::move(runs), choices, head, object,
                                           &tok](size_t, httplib::DataSink& sink) {
        // Nothing may escape into httplib's connection thread.
        try {
          std::string out;
          auto [i, u] = runs->NextAny();
          // An error ends the whole stream: the other completions are dropped.
          const bool failed = !u.status.ok();
          if (failed) {
            runs->DropAll();
            out = "data: " + ErrorFor(u.status).body + "\n\n";
          } else {
            json chunk = head;
            chunk["object"] = object;
            chunk["choices"] = json::array({Part(shape, tok, (*choices)[i], i, u)});
            if (shape.include_usage) chunk["usage"] = nullptr;
            out = "data: " + Dump(chunk) + "\n\n";
          }
          const bool finished = failed || runs->all_finished();
          if (finished) {
            if (shape.include_usage && !failed) {
              json last = head;
              last["object"] = object;
              last["choices"] = json::array();
              last["usage"] = UsageJson(*runs, *choices);
              out += "data: " + Dump(last) + "\n\n";
            }
            out += "data: [DONE]\n\n";
          }
          if (!sink.write(out.data(), out.size())) return false;  // the client went away
          if (finished) sink.done();
          return true;
        } catch (const std::exception& e) {
          const std::string out = "data: " + ErrorFor(absl::InternalError(e.what())).body + "\n\n";
          sink.write(out.data(), out.size());
          return false;  // ends the connection; the runs are dropped with it
        }
      });
}

}  // namespace mcserve::http
