// Tokenize, Detokenize and ModelInfo's tokenizer: the tokenizer's side of
// the API, without gRPC (GenerationService answers with these on the
// calling gRPC thread; the tokenizer is immutable and thread-safe).
#ifndef MCSERVE_SERVER_RPC_TOKENIZE_H_
#define MCSERVE_SERVER_RPC_TOKENIZE_H_

#include "absl/status/status.h"
#include "mcserve/v1/generation.pb.h"
#include "server/rpc/validation.h"
#include "server/tokenizer/tokenizer.h"

namespace mcserve::rpc {

absl::Status Tokenize(const tokenizer::Tokenizer& tok, const v1::TokenizeRequest& req,
                      v1::TokenizeResponse& out);
// INVALID_ARGUMENT "ids[i] = id is not below vocab_size V" for an id past
// limits.vocab_size.
absl::Status Detokenize(const tokenizer::Tokenizer& tok, const RequestLimits& limits,
                        const v1::DetokenizeRequest& req, v1::DetokenizeResponse& out);
void DescribeTokenizer(const tokenizer::Tokenizer& tok, v1::TokenizerInfo& out);

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_TOKENIZE_H_
