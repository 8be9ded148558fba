// libFuzzer target: a GenerateRequest as the server receives it, from raw
// bytes: gRPC's byte buffer decoded by proto/wire (protobuf's parse, and for
// bytes it refuses, invalid UTF-8 or broken wire format, the defect that names
// why), then the server's validation (rpc/validation.h) against the built-in
// model's vocabulary with the byte tokenizer. A defect is exactly a failed
// protobuf parse; any other input must give an engine request or an
// INVALID_ARGUMENT, and the request it gives must be within the limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "proto/wire/request_decoding.h"
#include "server/rpc/validation.h"
#include "server/tokenizer/byte_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const mcserve::tokenizer::ByteTokenizer tok(258, 256, 257);
  grpc::Slice slice(data, size);
  grpc::ByteBuffer buffer(&slice, 1);
  mcserve::v1::GenerateRequest req;
  if (!mcserve::wire::DecodeRequest(&buffer, &req).ok()) std::abort();
  const std::string defect = mcserve::wire::RequestDefect(req);
  mcserve::v1::GenerateRequest plain;
  const bool parses = plain.ParseFromArray(data, static_cast<int>(size));
  if (parses == !defect.empty()) std::abort();
  if (!defect.empty()) {
    if (defect.rfind("field '", 0) != 0 && defect.rfind("request is not a valid", 0) != 0) {
      std::abort();
    }
    return 0;
  }
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
