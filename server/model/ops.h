// Small tensor functions of the MC model (mc-model.md §4), shared by the
// decode and prefill paths so both compute the same thing.
#ifndef MCSERVE_SERVER_MODEL_OPS_H_
#define MCSERVE_SERVER_MODEL_OPS_H_

#include <ATen/ATen.h>

namespace mcserve::model {

// x / sqrt(mean(x^2, last dim) + eps) * w
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w, double eps);
// y / max(||y||, 1e-6) over the last dim
at::Tensor L2Norm(const at::Tensor& y);
// W_down(silu(W_gate z) * (W_up z)) with gate and up fused as [2*d_ff, D]
at::Tensor SwiGlu(const at::Tensor& z, const at::Tensor& gate_up, const at::Tensor& down);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_OPS_H_
