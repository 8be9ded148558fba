// The OpenAI chat completions API in mcserve terms: the messages are
// rendered by the model directory's chat template (chat_template.h) into a
// prompt, and the rest of the body is read as a completions request
// (openai_protocol.h), so the fields, limits and errors are the same.
//
// Request fields besides the completions API's: messages (each a role and a
// content string, or a list of {"type": "text", "text"} parts),
// add_generation_prompt (default true), max_completion_tokens (an alias of
// max_tokens; unset: the server's --default_max_tokens), logprobs (bool) with
// top_logprobs (0-20). The template gets messages, bos_token, eos_token and
// add_generation_prompt. A leading bos_token is cut from the rendered prompt:
// the server starts every sequence with BOS itself. The rest is encoded as
// text, as a completions prompt is (a special token's text, such as
// "<|im_start|>", becomes that token only if the tokenizer encodes it so).
#ifndef MCSERVE_SERVER_HTTP_CHAT_PROTOCOL_H_
#define MCSERVE_SERVER_HTTP_CHAT_PROTOCOL_H_

#include <nlohmann/json.hpp>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/engine/request.h"
#include "server/http/chat_template.h"
#include "server/http/openai_protocol.h"
#include "server/tokenizer/tokenizer.h"

namespace mcserve::http {

// Most messages one chat request may carry (a template may look at every
// message for each one).
inline constexpr int kMaxChatMessages = 1024;

// INVALID_ARGUMENT whose message starts with the offending field's name
// (a template's raise_exception: "messages" and its message).
absl::StatusOr<CompletionCall> ParseChatRequest(absl::string_view body,
                                                const ModelChatTemplate& chat);

// The chat API's logprobs.content entries for these tokens.
nlohmann::json ChatLogprobsJson(const tokenizer::Tokenizer& tok,
                                const std::vector<engine::TokenOut>& tokens);

}  // namespace mcserve::http

#endif  // MCSERVE_SERVER_HTTP_CHAT_PROTOCOL_H_
