#include "server/model/deep_memory.h"

#include <cmath>
#include <vector>

namespace mcserve::model {
namespace {

constexpr double kLnEps = 1e-5;
constexpr double kClipEps = 1e-6;

// [..., 2*hid, d] -> its size with the last two dimensions replaced.
std::vector<int64_t> Lead(const at::Tensor& t, std::vector<int64_t> tail) {
  std::vector<int64_t> s(t.sizes().begin(), t.sizes().end() - 2);
  s.insert(s.end(), tail.begin(), tail.end());
  return s;
}

// gamma [H, d] as [H, 1, d], to scale rows [..., H, t, d].
at::Tensor RowGain(const at::Tensor& gamma) { return gamma.unsqueeze(-2); }

}  // namespace

at::Tensor PackDeepMemory(const at::Tensor& w1, const at::Tensor& w2) {
  const int64_t d = w1.size(-2), hid = w1.size(-1);
  return at::cat({w1.contiguous().reshape(Lead(w1, {hid, d})), w2}, -2);
}

at::Tensor DeepW1(const at::Tensor& packed, int64_t hid) {
  const int64_t d = packed.size(-1);
  return packed.narrow(-2, 0, hid).reshape(Lead(packed, {d, hid}));
}

at::Tensor DeepW2(const at::Tensor& packed, int64_t hid) { return packed.narrow(-2, hid, hid); }

at::Tensor DeepRead(const at::Tensor& packed, const at::Tensor& gamma, const at::Tensor& x,
                    int64_t hid) {
  const at::Tensor a = at::gelu(at::matmul(x, DeepW1(packed, hid)));  // exact (erf) gelu
  const at::Tensor y = at::matmul(a, DeepW2(packed, hid));
  const at::Tensor yh = at::layer_norm(y, {y.size(-1)}, {}, {}, kLnEps);
  return x + RowGain(gamma) * yh;
}

at::Tensor DeepGradient(const at::Tensor& packed, const at::Tensor& gamma, const at::Tensor& k,
                        const at::Tensor& v, const at::Tensor& theta, int64_t hid) {
  const at::Tensor w1 = DeepW1(packed, hid), w2 = DeepW2(packed, hid);
  const at::Tensor gain = RowGain(gamma);
  const at::Tensor z = at::matmul(k, w1);  // [..., H, b, hid]
  const at::Tensor a = at::gelu(z);
  const at::Tensor y = at::matmul(a, w2);  // [..., H, b, d]
  const at::Tensor mean = y.mean(-1, /*keepdim=*/true);
  const at::Tensor s = at::sqrt((y - mean).square().mean(-1, true) + kLnEps);
  const at::Tensor yh = (y - mean) / s;
  const at::Tensor err = k + gain * yh - v;
  const at::Tensor gyh = theta.unsqueeze(-1) * err * gain;
  const at::Tensor gy =
      (gyh - gyh.mean(-1, true) - yh * (gyh * yh).mean(-1, true)) / s;  // through the LayerNorm
  const at::Tensor g2 = at::matmul(a.transpose(-1, -2), gy);            // [..., H, hid, d]
  const at::Tensor cdf = 0.5 * (1.0 + at::erf(z * M_SQRT1_2));
  const at::Tensor pdf = at::exp(-0.5 * z.square()) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
  const at::Tensor gz = at::matmul(gy, w2.transpose(-1, -2)) * (cdf + z * pdf);
  const at::Tensor g1 = at::matmul(k.transpose(-1, -2), gz);  // [..., H, d, hid]
  return PackDeepMemory(g1, g2);
}

at::Tensor DeepWrite(const DeepMemoryConfig& cfg, const at::Tensor& w, const at::Tensor& g,
                     const at::Tensor& rho, const at::Tensor& eta, at::Tensor* sigma, int64_t hid) {
  at::Tensor step = g;
  if (cfg.grad_clip > 0.0) {
    std::vector<at::Tensor> halves;
    for (const at::Tensor& half : g.split(hid, -2)) {  // W1's entries, then W2's
      const at::Tensor norm = half.square().sum({-2, -1}, /*keepdim=*/true).sqrt();
      halves.push_back(half * at::clamp_max(cfg.grad_clip / (norm + kClipEps), 1.0));
    }
    step = at::cat(halves, -2);
  }
  at::Tensor mom = -step;
  if (eta.defined()) mom = eta.unsqueeze(-1).unsqueeze(-1) * *sigma - step;
  if (sigma != nullptr && sigma->defined()) *sigma = mom;
  const at::Tensor kept = rho.defined() ? rho.unsqueeze(-1).unsqueeze(-1) * w : w;
  return kept + mom;
}

}  // namespace mcserve::model
