#include "server/model/mixer_inputs.h"

#include <vector>

#include "server/model/ops.h"

namespace mcserve::model {

MixerInputs ProjectMixer(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& z) {
  const int64_t n = z.size(0), H = c.n_heads, d = c.head_dim;
  const std::vector<at::Tensor> parts = at::linear(z, lw.in_proj).split(c.inner_dim(), -1);
  MixerInputs m;
  m.q = L2Norm(parts[0].reshape({n, H, d}));
  m.k = L2Norm(parts[1].reshape({n, H, d}));
  m.v = parts[2].reshape({n, H, d});
  m.g = parts[3];
  if (c.HasGate()) m.u = parts[4].reshape({n, H, d});
  if (c.scalar_decay) m.a_logit = at::linear(z, lw.a_w, lw.a_b);
  if (c.rule == MemoryRule::kDelta) m.beta = at::sigmoid(at::linear(z, lw.b_w, lw.b_b));
  if (c.is_deep()) {
    m.beta = m.beta * c.deep.lr_max;
    if (c.deep.momentum) m.m_logit = at::linear(z, lw.m_w, lw.m_b);
  }
  return m;
}

}  // namespace mcserve::model
