// Small tensor functions of the MC model (mc-model.md §4), shared by the
// decode and prefill paths so both compute the same thing.
#ifndef MCSERVE_SERVER_MODEL_OPS_H_
#define MCSERVE_SERVER_MODEL_OPS_H_

#include <ATen/ATen.h>

#include <cstdint>

namespace mcserve::model {

// x / sqrt(mean(x^2, last dim) + eps) * w
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w, double eps);
// y / max(||y||, 1e-6) over the last dim
at::Tensor L2Norm(const at::Tensor& y);
// W_down(silu(W_gate z) * (W_up z)) with gate and up fused as [2*d_ff, D]
at::Tensor SwiGlu(const at::Tensor& z, const at::Tensor& gate_up, const at::Tensor& down);
// ssc: mask of the top_k largest entries of z along its last dim; ties go
// to the most recent (highest index).
at::Tensor TopKMask(const at::Tensor& z, int64_t top_k);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_OPS_H_
