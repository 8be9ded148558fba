#include "server/model/fla_mixer.h"

#include <cmath>
#include <vector>

#include "server/model/ops.h"

namespace mcserve::model {
namespace {

// fla's l2norm: x / sqrt(sum x^2 + 1e-6) over the last dim.
at::Tensor FlaL2Norm(const at::Tensor& x) {
  return x * at::rsqrt(x.pow(2).sum(-1, /*keepdim=*/true) + 1e-6);
}

at::Tensor QkActivate(QkActivation a, const at::Tensor& x) {
  switch (a) {
    case QkActivation::kSilu:
      return at::silu(x);
    case QkActivation::kRelu:
      return at::relu(x);
    case QkActivation::kElu:
      return at::elu(x) + 1.0;
    case QkActivation::kIdentity:
      return x;
  }
  return x;
}

// Activations after the convolution (or on the raw projections without
// one): GatedDeltaNet silu everywhere; DeltaNet qk_activation on q and k,
// silu on v.
void Activate(const ModelConfig& c, at::Tensor& q, at::Tensor& k, at::Tensor& v) {
  const QkActivation a =
      c.family == ModelFamily::kGatedDeltaNet ? QkActivation::kSilu : c.fla.qk_activation;
  q = QkActivate(a, q);
  k = QkActivate(a, k);
  v = at::silu(v);
}

// From the activated q, k, v [N, width] and the projections `proj` (rows of
// in_proj) to the memory's inputs.
MixerInputs Finish(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& z, at::Tensor q,
                   at::Tensor k, at::Tensor v, const at::Tensor& proj) {
  const int64_t N = z.size(0), H = c.n_heads, dk = c.head_dim, HV = c.state_heads();
  const int64_t dv = c.value_dim(), K = c.key_width(), Vw = c.value_width();
  const int64_t groups = HV / H;
  Activate(c, q, k, v);
  q = q.reshape({N, H, dk});
  k = k.reshape({N, H, dk});
  if (c.fla.qk_norm == QkNorm::kSum) {
    q = q / q.sum(-1, true);
    k = k / k.sum(-1, true);
  } else {
    q = FlaL2Norm(q);
    k = FlaL2Norm(k);
  }
  MixerInputs m;
  int64_t at_row = 2 * K + Vw;
  if (c.fla.use_gate) {
    m.g = proj.narrow(1, at_row, Vw);
    at_row += Vw;
  }
  if (c.HasGate()) {
    // The router input per key head: u_proj x, or the normalised query.
    m.u = c.router == Router::kProj ? proj.narrow(1, at_row, K).reshape({N, H, dk}) : q;
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(dk));
  m.q = q * scale;
  m.k = k;
  if (groups > 1) {
    m.q = m.q.repeat_interleave(groups, 1);
    m.k = m.k.repeat_interleave(groups, 1);
    if (m.u.defined()) m.u = m.u.repeat_interleave(groups, 1);
  }
  m.v = v.reshape({N, HV, dv});
  m.beta = lw.b_w.defined() ? at::sigmoid(at::linear(z, lw.b_w)) : at::ones({N, HV}, z.options());
  if (c.fla.allow_neg_eigval) m.beta = m.beta * 2.0;  // also without use_beta, as fla does
  if (c.family == ModelFamily::kGatedDeltaNet) {
    // g = -exp(A_log) * softplus(a_proj x + dt_bias), the log of the decay.
    m.log_alpha = -at::exp(lw.a_log) * at::softplus(at::linear(z, lw.a_w) + lw.dt_bias, 1, 20);
  }
  return m;
}

}  // namespace

int64_t FlaConvChannels(const ModelConfig& c) { return 2 * c.key_width() + c.value_width(); }

MixerInputs ProjectFlaDecode(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& z,
                             const at::Tensor& conv_pool, const at::Tensor& slots) {
  const int64_t K = c.key_width(), Vw = c.value_width();
  const at::Tensor proj = at::linear(z, lw.in_proj);
  at::Tensor qkv = proj.narrow(1, 0, 2 * K + Vw);
  if (lw.conv.defined()) {
    // Shift each session's window by one token and convolve.
    const at::Tensor old = conv_pool.index_select(0, slots);  // [B, C, W]
    const int64_t W = old.size(2);
    const at::Tensor window = at::cat({old.narrow(2, 1, W - 1), qkv.unsqueeze(2)}, 2);
    conv_pool.index_copy_(0, slots, window);
    qkv = (window * lw.conv).sum(2);
  }
  return Finish(c, lw, z, qkv.narrow(1, 0, K), qkv.narrow(1, K, K), qkv.narrow(1, 2 * K, Vw), proj);
}

MixerInputs ProjectFlaPrefill(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& z,
                              const at::Tensor& conv_state) {
  const int64_t K = c.key_width(), Vw = c.value_width(), T = z.size(0);
  const at::Tensor proj = at::linear(z, lw.in_proj);
  at::Tensor qkv = proj.narrow(1, 0, 2 * K + Vw);
  if (lw.conv.defined()) {
    // The cache holds the last W inputs; the piece's outputs need the last
    // W - 1 of them before its own.
    const int64_t W = conv_state.size(1), C = conv_state.size(0);
    const at::Tensor padded = at::cat({conv_state, qkv.t()}, 1);  // [C, W + T]
    const at::Tensor y = at::conv1d(padded.narrow(1, 1, W - 1 + T).unsqueeze(0),
                                    lw.conv.unsqueeze(1), /*bias=*/c10::optional<at::Tensor>(),
                                    /*stride=*/at::IntArrayRef{1}, /*padding=*/at::IntArrayRef{0},
                                    /*dilation=*/at::IntArrayRef{1}, /*groups=*/C);
    conv_state.copy_(padded.narrow(1, T, W));
    qkv = y.squeeze(0).t();  // [T, C]
  }
  return Finish(c, lw, z, qkv.narrow(1, 0, K), qkv.narrow(1, K, K), qkv.narrow(1, 2 * K, Vw), proj);
}

at::Tensor FlaMixerOut(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& o,
                       const at::Tensor& g) {
  const int64_t N = o.size(0);
  at::Tensor y = RmsNorm(o, lw.o_norm, c.rms_eps);  // per value head over dv
  if (c.fla.use_gate) y = y * at::silu(g.reshape({N, c.state_heads(), c.value_dim()}));
  return at::linear(y.reshape({N, -1}), lw.o_proj);
}

}  // namespace mcserve::model
