// Gate weights of MC aggregation (mc-model.md §5), shared by the CPU
// reference and the CUDA kernels so both apply the same rule.
#ifndef MCSERVE_SERVER_KERNELS_MC_GATES_H_
#define MCSERVE_SERVER_KERNELS_MC_GATES_H_

#include <cmath>
#include <cstdint>

#include "server/kernels/bf16.h"
#include "server/kernels/mc_params.h"

namespace mcserve::kernels {

// True when checkpoint i (of n, logits z) is among ssc's top_k: fewer than
// top_k others beat it, where a tie goes to the more recent (larger index).
// O(n) per call; the CPU reference selects by partial sort instead, with the
// same order (SscBetter).
MCSERVE_HD bool SscBetter(const float* z, int32_t a, int32_t b) {
  return z[a] > z[b] || (z[a] == z[b] && a > b);
}
MCSERVE_HD bool SscSelected(const float* z, int32_t n, int32_t i, int32_t top_k) {
  if (n <= top_k) return true;
  int32_t better = 0;
  for (int32_t j = 0; j < n; ++j) {
    if (SscBetter(z, j, i)) ++better;
  }
  return better < top_k;
}

// Turns logits into weights in place. On entry z_on and z[0..n) hold the
// gate logits (ignored for residual/mean); on exit *w_on and z[0..n) hold
// the weights (0 for checkpoints ssc did not select). For ssc, selected[i]
// must say on entry whether checkpoint i is in the top_k (see SscSelected);
// it is ignored for the other aggregations.
MCSERVE_HD void AggregationWeights(const McLayerParams& p, int32_t n, float z_on, float* z,
                                   float* w_on, const bool* selected) {
  switch (p.aggregation) {
    case Aggregation::kNone:
      *w_on = 1.0f;
      return;
    case Aggregation::kResidual:
      *w_on = 1.0f;
      for (int32_t i = 0; i < n; ++i) z[i] = 1.0f;
      return;
    case Aggregation::kMean: {
      const float w = 1.0f / static_cast<float>(1 + n);
      *w_on = w;
      for (int32_t i = 0; i < n; ++i) z[i] = w;
      return;
    }
    case Aggregation::kGrm:
    case Aggregation::kSoup:
    case Aggregation::kSsc:
      break;
  }
  const bool ssc = p.aggregation == Aggregation::kSsc;
  float m = z_on;
  for (int32_t i = 0; i < n; ++i) {
    if ((!ssc || selected[i]) && z[i] > m) m = z[i];
  }
  float e_on = expf(z_on - m);
  float total = e_on;
  for (int32_t i = 0; i < n; ++i) {
    z[i] = (!ssc || selected[i]) ? expf(z[i] - m) : 0.0f;
    total += z[i];
  }
  const float inv = 1.0f / total;
  *w_on = e_on * inv;
  for (int32_t i = 0; i < n; ++i) z[i] *= inv;
}

}  // namespace mcserve::kernels

#endif  // MCSERVE_SERVER_KERNELS_MC_GATES_H_
