// Checks a GenerateRequest against the model and the server's limits and
// turns it into an engine request with every default applied (a text
// prompt encoded by the model's tokenizer). Errors are INVALID_ARGUMENT
// with a message that names the field.
#ifndef MCSERVE_SERVER_RPC_VALIDATION_H_
#define MCSERVE_SERVER_RPC_VALIDATION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "mcserve/v1/generation.pb.h"
#include "server/engine/request.h"
#include "server/tokenizer/tokenizer.h"

namespace mcserve::rpc {

struct RequestLimits {
  // The served model's vocabulary (its config's vocab_size, which may be
  // padded past the tokenizer's own ids); GenerationService sets it.
  int32_t vocab_size = 0;
  int32_t max_prompt_tokens = 8192;
  int32_t max_tokens_limit = 4096;
  int32_t default_max_tokens = 256;
  int32_t max_stop_strings = 16;
  int32_t max_stop_bytes = 256;
  int32_t max_top_logprobs = 20;
  int32_t max_logit_bias = 1024;  // SamplingParams.logit_bias entries
  int32_t max_id_length = 128;
  int64_t max_snapshot_bytes = int64_t{1} << 30;  // ImportSession
};

// `random_seed` is used when the request sets no seed; `tok` encodes a
// text prompt.
absl::StatusOr<engine::NewRequest> ValidateGenerate(const v1::GenerateRequest& req,
                                                    const RequestLimits& limits,
                                                    const tokenizer::Tokenizer& tok,
                                                    uint64_t random_seed);

// Token ids from a request: each below limits.vocab_size, or
// INVALID_ARGUMENT "<field>[i] = id is not below vocab_size V".
absl::StatusOr<std::vector<int32_t>> ValidateTokenIds(
    const google::protobuf::RepeatedField<uint32_t>& ids, const RequestLimits& limits,
    absl::string_view field);

// Session ids: 1..max_length characters from [A-Za-z0-9._:-].
absl::Status ValidateSessionId(const std::string& id, const RequestLimits& limits,
                               absl::string_view field);

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_VALIDATION_H_
