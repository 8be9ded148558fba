// libFuzzer target: a GenerateRequest as the server receives it, from raw
// bytes: protobuf's parse (which refuses invalid UTF-8 in string fields),
// then the server's validation (rpc/validation.h) against the built-in
// model's vocabulary with the byte tokenizer. Any input must give an engine
// request or an INVALID_ARGUMENT; the request it gives must be within the
// limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "server/rpc/validation.h"
#include "server/tokenizer/byte_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const mcserve::tokenizer::ByteTokenizer tok(258, 256, 257);
  mcserve::v1::GenerateRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  mcserve::rpc::RequestLimits limits;
  limits.vocab_size = 258;
  absl::StatusOr<mcserve::engine::NewRequest> r =
      mcserve::rpc::ValidateGenerate(req, limits, tok, /*random_seed=*/7);
  if (!r.ok()) {
    if (r.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (static_cast<int32_t>(r->prompt.size()) > limits.max_prompt_tokens) std::abort();
  for (int32_t id : r->prompt) {
    if (id < 0 || id >= limits.vocab_size) std::abort();
  }
  if (r->params.max_tokens > limits.max_tokens_limit) std::abort();
  return 0;
}
