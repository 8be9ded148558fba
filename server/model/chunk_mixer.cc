#include "server/model/chunk_mixer.h"

#include <limits>

#include "server/model/ops.h"

namespace mcserve::model {
namespace {

using kernels::Aggregation;
using kernels::McLayerParams;
using kernels::MemoryRule;

// Online read and final state of the recurrence over the chunk.
ChunkMixerOutputs OnlinePart(const McLayerParams& p, const ChunkMixerInputs& in) {
  const int64_t T = in.q.size(1);
  const auto opts = in.q.options();
  const at::Tensor incl = at::ones({T, T}, opts.dtype(at::kBool)).tril();
  at::Tensor decay;  // D [H, T, T], zero above the diagonal
  at::Tensor a;      // A [H, T, 1]
  at::Tensor tail;   // A_T / A_j [H, T, 1]
  at::Tensor a_end;  // A_T [H, 1, 1]
  if (p.scalar_decay) {
    const at::Tensor cum = in.log_alpha.cumsum(-1);  // [H, T]
    const at::Tensor diff = cum.unsqueeze(-1) - cum.unsqueeze(-2);
    decay = diff.masked_fill(incl.logical_not(), -std::numeric_limits<float>::infinity()).exp();
    a = cum.exp().unsqueeze(-1);
    const at::Tensor last = cum.narrow(-1, T - 1, 1);  // [H, 1]
    tail = (last - cum).exp().unsqueeze(-1);
    a_end = last.exp().unsqueeze(-1);
  } else {
    decay = incl.to(opts.dtype()).expand({in.q.size(0), T, T});
  }
  at::Tensor u = in.v;
  if (p.rule == MemoryRule::kDelta) {
    const at::Tensor beta = in.beta.unsqueeze(-1);  // [H, T, 1]
    at::Tensor ks0_read = at::matmul(in.k, in.s0);  // rows k_t^T S_0
    if (p.scalar_decay) ks0_read = ks0_read * a;
    const at::Tensor rhs = beta * (in.v - ks0_read);
    at::Tensor lower = (at::matmul(in.k, in.k.transpose(-1, -2)) * decay).tril(-1) * beta;
    lower = lower + at::eye(T, opts);
    u = at::linalg_solve_triangular(lower, rhs, /*upper=*/false, /*left=*/true,
                                    /*unitriangular=*/true);
  }
  at::Tensor q_s0 = at::matmul(in.q, in.s0);
  if (p.scalar_decay) q_s0 = q_s0 * a;
  const at::Tensor attn = at::matmul(in.q, in.k.transpose(-1, -2)) * decay;
  ChunkMixerOutputs out;
  out.o = q_s0 + at::matmul(attn, u);
  const at::Tensor kt = in.k.transpose(-1, -2);
  if (p.scalar_decay) {
    out.s_end = a_end * in.s0 + at::matmul(kt, tail * u);
  } else {
    out.s_end = in.s0 + at::matmul(kt, u);
  }
  return out;
}

at::Tensor Aggregate(const McLayerParams& p, const ChunkMixerInputs& in, const at::Tensor& o_on,
                     const at::Tensor& ks_run) {
  const int64_t n = in.ckpt.defined() ? in.ckpt.size(1) : 0;
  if (p.aggregation == Aggregation::kNone) return o_on;
  // reads[h, t, i, :] = M_i^T q_t, as one batched product per head:
  // q [H, T, d] @ M laid out [H, d, n * d].
  at::Tensor reads;
  if (n > 0) {
    const int64_t H = in.q.size(0), T = in.q.size(1), dk = in.ckpt.size(2), dv = in.ckpt.size(3);
    const at::Tensor m = in.ckpt.permute({0, 2, 1, 3}).reshape({H, dk, n * dv});
    reads = at::bmm(in.q, m).view({H, T, n, dv});
  }
  if (p.aggregation == Aggregation::kResidual || p.aggregation == Aggregation::kMean) {
    at::Tensor o = n > 0 ? o_on + reads.sum(2) : o_on;
    if (p.aggregation == Aggregation::kMean) o = o / static_cast<double>(1 + n);
    return o;
  }
  // Gated: grm, soup (identical for matrix memory), ssc.
  const int64_t T = in.q.size(1);
  const at::Tensor counts =
      at::arange(1, T + 1, in.q.options()).add(static_cast<double>(in.count0));  // [T]
  const at::Tensor s_on = ks_run / counts.view({1, T, 1});
  const at::Tensor z_on = (in.u * s_on).sum(-1, true) * p.gate_scale;  // [H, T, 1]
  if (n == 0) return o_on;                                             // softmax over one logit
  at::Tensor z = at::matmul(in.u, in.ckpt_summary.transpose(-1, -2)) * p.gate_scale;  // [H, T, n]
  if (p.aggregation == Aggregation::kSsc) {
    z = z.masked_fill(TopKMask(z, p.top_k).logical_not(), -std::numeric_limits<float>::infinity());
  }
  const at::Tensor g = at::cat({z_on, z}, -1).softmax(-1);  // [H, T, 1 + n]
  return g.narrow(-1, 0, 1) * o_on + (g.narrow(-1, 1, n).unsqueeze(-1) * reads).sum(2);
}

}  // namespace

ChunkMixerOutputs ChunkMixer(const McLayerParams& p, const ChunkMixerInputs& in) {
  ChunkMixerOutputs out = OnlinePart(p, in);
  const at::Tensor ks_run = in.ks0.unsqueeze(1) + in.k.cumsum(1);  // [H, T, d]
  out.ks_end = ks_run.select(1, in.q.size(1) - 1);
  out.o = Aggregate(p, in, out.o, ks_run);
  return out;
}

}  // namespace mcserve::model
