// Log-probabilities of many rows of logits at once (prompt scoring): what
// ComputeLogprobs (sampler.h) gives for one row, in a few vectorized passes
// over the [n, V] tensor instead of a scalar loop and a sort per row.
#ifndef MCSERVE_SERVER_MODEL_ROW_LOGPROBS_H_
#define MCSERVE_SERVER_MODEL_ROW_LOGPROBS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "server/model/sampler.h"

namespace mcserve::model {

// Row j of `logits` ([n, V] float32 on the CPU): the log-probability of
// `chosen[j]` (log-softmax over the row, normalized in double precision)
// and the `top_n` most likely ids, best first.
std::vector<TokenLogprobs> RowLogprobs(const at::Tensor& logits, absl::Span<const int32_t> chosen,
                                       int32_t top_n);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_ROW_LOGPROBS_H_
