// Writing an HTTP completion request's results in OpenAI's shapes: the
// completions API ("text_completion": choices with text) or the chat API
// ("chat.completion": choices with an assistant message), as one JSON body
// or as server-sent events while the engine produces them ("data: {chunk}"
// per update, completions interleaved and each chunk naming its index, then
// the usage chunk with stream_options.include_usage, then "data: [DONE]").
// Errors are OpenAI's error JSON (openai_protocol.h).
#ifndef MCSERVE_SERVER_HTTP_RESPONSE_WRITER_H_
#define MCSERVE_SERVER_HTTP_RESPONSE_WRITER_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "server/http/completion_runs.h"
#include "server/tokenizer/tokenizer.h"

namespace httplib {
struct Response;
}

namespace mcserve::http {

// `s` as OpenAI's error JSON with its HTTP status (and Retry-After for 429
// and 503).
void SendError(httplib::Response& res, const absl::Status& s, int http_status = 0);
// JSON text, invalid UTF-8 replaced.
std::string Dump(const nlohmann::json& j);

struct ResponseShape {
  bool chat = false;  // the chat API's objects, else the completions API's
  std::string id;     // "cmpl-..." or "chatcmpl-..."
  std::string model;
  int64_t created = 0;  // Unix seconds
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // with each token's log-probabilities
  std::string echo;            // completions: the prompt, before each choice's text
};

// Writes what `runs` produce into `res`: the whole JSON body now, or a
// chunked event stream that takes the runs along (dropped if the client
// goes away).
void WriteCompletions(const ResponseShape& shape, std::shared_ptr<CompletionRuns> runs,
                      const tokenizer::Tokenizer& tok, httplib::Response& res);

}  // namespace mcserve::http

#endif  // MCSERVE_SERVER_HTTP_RESPONSE_WRITER_H_
