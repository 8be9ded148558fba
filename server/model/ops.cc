#include "server/model/ops.h"

namespace mcserve::model {

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w, double eps) {
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * w;
}

at::Tensor L2Norm(const at::Tensor& y) {
  return y / y.norm(2, -1, /*keepdim=*/true).clamp_min(1e-6);
}

at::Tensor SwiGlu(const at::Tensor& z, const at::Tensor& gate_up, const at::Tensor& down) {
  const std::vector<at::Tensor> gu = at::linear(z, gate_up).chunk(2, -1);
  return at::linear(at::silu(gu[0]) * gu[1], down);
}

}  // namespace mcserve::model
