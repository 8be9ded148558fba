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

at::Tensor TopKMask(const at::Tensor& z, int64_t top_k) {
  const int64_t n = z.size(-1);
  if (n <= top_k) return at::ones_like(z, z.options().dtype(at::kBool));
  // A stable descending sort of the reversed list puts ties most-recent first.
  const at::Tensor rev = z.flip({-1});
  const at::Tensor order = std::get<1>(at::sort(rev, /*stable=*/true, -1, /*descending=*/true));
  const at::Tensor picked = (n - 1) - order.narrow(-1, 0, top_k);
  return at::zeros_like(z, z.options().dtype(at::kBool)).scatter(-1, picked, true);
}

}  // namespace mcserve::model
