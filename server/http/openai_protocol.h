// The OpenAI completions API, as vLLM serves it, in mcserve.v1 terms: a
// request body becomes the GenerateRequest the gRPC API would receive (then
// validated by the same rpc::ValidateGenerate), and what the engine streams
// back becomes OpenAI's JSON. Plain functions, no I/O.
//
// Request fields: model, prompt (a string, token ids, or a list of one of
// either), max_tokens (default 16), temperature, top_p, seed, stop (a string
// or a list), presence_penalty, frequency_penalty, logit_bias (token id
// strings -> bias), logprobs (alternatives per token, 0-20), echo, n (the
// front forks one prefilled state n ways: http_front.h), stream,
// stream_options.include_usage, user; vLLM's extensions top_k, min_tokens,
// repetition_penalty, stop_token_ids, ignore_eos, include_stop_str_in_output;
// and mcserve's session_id (continue an MC session). Unknown fields are
// ignored, as vLLM does. echo with logprobs also scores the prompt
// (GenerateRequest.prompt_logprobs): its tokens lead the logprobs lists.
#ifndef MCSERVE_SERVER_HTTP_OPENAI_PROTOCOL_H_
#define MCSERVE_SERVER_HTTP_OPENAI_PROTOCOL_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mcserve/v1/generation.pb.h"
#include "server/engine/request.h"
#include "server/tokenizer/tokenizer.h"

namespace mcserve::http {

struct CompletionCall {
  std::string model;
  v1::GenerateRequest request;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int32_t logprobs = -1;       // -1: none; else alternatives per token
  bool echo = false;
  int32_t n = 1;
  std::string user;
};

// Most nesting a request body may have (deeper would cost stack in JSON
// copies and dumps).
inline constexpr int kMaxJsonDepth = 32;
// The body as a JSON object; INVALID_ARGUMENT ("body ...") when it is not
// one or nests deeper than kMaxJsonDepth.
absl::StatusOr<nlohmann::json> ParseBody(absl::string_view text);

// INVALID_ARGUMENT whose message starts with the offending field's name.
absl::StatusOr<CompletionCall> ParseCompletionRequest(absl::string_view body);
// The same, of a body already parsed (ParseBody).
absl::StatusOr<CompletionCall> ParseCompletionBody(const nlohmann::json& body);

// OpenAI's finish_reason: "length", "stop" (stop string, stop id or EOS), or
// "abort" (cancelled, or cut by shutdown).
std::string OpenAiFinishReason(engine::FinishReason r);

// One token as OpenAI's logprobs lists it: its text, or "bytes:\xNN..." when
// its bytes are not UTF-8 by themselves (vLLM's convention).
std::string TokenString(const tokenizer::Tokenizer& tok, int32_t id);

// The `logprobs` object of a choice for these tokens; `offset` is where the
// first token's text starts in the choice's text.
nlohmann::json LogprobsJson(const tokenizer::Tokenizer& tok,
                            const std::vector<engine::TokenOut>& tokens, size_t offset);

struct HttpError {
  int status = 500;
  std::string body;  // OpenAI's {"error": {...}}
};
// `s` as OpenAI reports errors: HTTP status from the code (or
// `http_status` when set: 404, 405, 413 from the HTTP layer), `param` from
// the field its message starts with ("sampling_params." dropped).
HttpError ErrorFor(const absl::Status& s, int http_status = 0);

}  // namespace mcserve::http

#endif  // MCSERVE_SERVER_HTTP_OPENAI_PROTOCOL_H_
