#include "server/model/span_mixer.h"

#include <limits>
#include <vector>

#include "server/kernels/span_prefill_cpu.h"
#include "server/model/ops.h"

namespace mcserve::model {
namespace {

using kernels::Aggregation;
using kernels::McLayerParams;
using kernels::MemoryRule;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Segment layout of a padded span.
struct Span {
  int64_t H, T, C, G, front, back;
  int64_t closed() const { return back == 0 ? G : G - 1; }  // boundaries the span closes
};

// [H, T, x] -> [H, G, C, x] and [H, T] -> [H, G, C], zero-padded.
at::Tensor Segments(const Span& s, const at::Tensor& t) {
  if (t.dim() == 3) {
    return at::constant_pad_nd(t, {0, 0, s.front, s.back}, 0).view({s.H, s.G, s.C, t.size(2)});
  }
  return at::constant_pad_nd(t, {s.front, s.back}, 0).view({s.H, s.G, s.C});
}

// The span's segments and their decay, as the online part reads them.
struct Online {
  at::Tensor q, k, v;  // [H, G, C, d]
  at::Tensor beta;     // [H, G, C]; undefined unless delta
  at::Tensor decay;    // D [H, G, C, C] (or [C, C] without decay), zero above the diagonal
  at::Tensor a;        // A [H, G, C, 1]; undefined without decay
  at::Tensor tail;     // A_C / A_j [H, G, C, 1]; undefined without decay
  at::Tensor a_end;    // A_C [H, G, 1, 1]; undefined without decay
};

// Raw float32 pointers to tensors handed to a CPU kernel, each made
// contiguous and kept alive as long as this is; null for an undefined one.
class KernelInputs {
 public:
  const float* operator()(const at::Tensor& t) {
    if (!t.defined()) return nullptr;
    held_.push_back(t.contiguous());
    return held_.back().data_ptr<float>();
  }

 private:
  std::vector<at::Tensor> held_;
};

// The online read [H, G, C, dv] and the states (span_prefill_cpu.h's
// SpanOnlineCpu) as written-out loops.
at::Tensor OnlineLoops(const McLayerParams& p, const Span& sp, const Online& on,
                       const at::Tensor& s0, SpanMixerOutputs& out) {
  const int64_t dk = on.k.size(3), dv = on.v.size(3);
  const at::Tensor o = at::empty({sp.H, sp.G, sp.C, dv}, on.q.options());
  out.s_end = at::empty({sp.H, dk, dv}, on.q.options());
  KernelInputs in;
  kernels::SpanOnlineArgs ka;
  ka.heads = sp.H;
  ka.segments = sp.G;
  ka.seg_len = sp.C;
  ka.dk = dk;
  ka.dv = dv;
  ka.closed = sp.closed();
  ka.reset = p.boundary == kernels::Boundary::kReset;
  ka.q = in(on.q);
  ka.k = in(on.k);
  ka.v = in(on.v);
  ka.beta = in(on.beta);
  if (on.a.defined()) {  // without decay, on.decay is the [C, C] mask the kernel has itself
    ka.decay = in(on.decay);
    ka.a = in(on.a);
    ka.tail = in(on.tail);
    ka.a_end = in(on.a_end);
  }
  ka.s0 = in(s0);
  ka.o = o.data_ptr<float>();
  if (ka.closed > 0) ka.closed_state = out.closed_ckpt.data_ptr<float>();
  ka.s_end = out.s_end.data_ptr<float>();
  kernels::SpanOnlineCpu(ka);
  return o;
}

// The same with LibTorch's batched ops: every segment's own products at
// once, then the recurrence from segment to segment.
at::Tensor OnlineBatched(const McLayerParams& p, const Span& sp, const Online& on,
                         const at::Tensor& s0, SpanMixerOutputs& out) {
  const int64_t dk = on.k.size(3), dv = on.v.size(3);
  const bool delta = on.beta.defined();
  const at::Tensor &q = on.q, &k = on.k, &v = on.v;
  // Delta rule: U = W - Y S_0 per segment.
  at::Tensor w, y;
  if (delta) {
    const at::Tensor beta = on.beta.unsqueeze(-1);  // [H, G, C, 1]
    // L below its diagonal (the solve takes the unit diagonal as given).
    const at::Tensor lower = (at::matmul(k, k.transpose(-1, -2)) * on.decay).tril(-1) * beta;
    const at::Tensor rhs = at::cat({beta * v, p.scalar_decay ? (beta * on.a) * k : beta * k}, -1);
    const at::Tensor sol = at::linalg_solve_triangular(lower, rhs, /*upper=*/false, /*left=*/true,
                                                       /*unitriangular=*/true);
    w = sol.narrow(-1, 0, dv);
    y = sol.narrow(-1, dv, dk);
  }
  const at::Tensor kt = (p.scalar_decay ? k * on.tail : k).transpose(-1, -2);  // [H, G, dk, C]
  std::vector<at::Tensor> s_seg, u_seg;
  s_seg.reserve(sp.G);
  u_seg.reserve(sp.G);
  at::Tensor s = s0;
  for (int64_t g = 0; g < sp.G; ++g) {
    s_seg.push_back(s);
    const at::Tensor ug =
        delta ? at::baddbmm(w.select(1, g), y.select(1, g), s, /*beta=*/1, /*alpha=*/-1)
              : v.select(1, g);
    u_seg.push_back(ug);
    const at::Tensor write = at::bmm(kt.select(1, g), ug);  // [H, dk, dv]
    s = p.scalar_decay ? at::addcmul(write, on.a_end.select(1, g), s) : s + write;
    if (g < sp.closed()) {
      out.closed_ckpt[g].copy_(s);
      if (p.boundary == kernels::Boundary::kReset) s = at::zeros_like(s);
    }
  }
  out.s_end = s;
  at::Tensor o_on = at::matmul(q, at::stack(s_seg, 1));
  if (p.scalar_decay) o_on = o_on * on.a;
  return o_on + at::matmul(at::matmul(q, k.transpose(-1, -2)) * on.decay, at::stack(u_seg, 1));
}

// Weights of the checkpoints per token, [H, G, C, n] (zero where not
// readable: segment g reads the first n0 + g), and of the online read,
// [H, G, C, 1], [1, G, 1, 1] or undefined (1). u [H, G, C, dk] is only read
// by the gated aggregations, with ks_run the open segment's running key sums
// and summary [H, n, dk] the checkpoints' mean keys.
void ReadWeights(const McLayerParams& p, const Span& sp, int64_t n0, const at::Tensor& u,
                 const at::Tensor& ks_run, const at::Tensor& summary, at::Tensor& weights,
                 at::Tensor& w_on) {
  const int64_t H = sp.H, G = sp.G, C = sp.C, n = summary.size(1), dk = summary.size(2);
  const auto opts = ks_run.options();
  const at::Tensor readable = (at::arange(n, opts.dtype(at::kLong)).view({1, n}) <
                               (at::arange(G, opts.dtype(at::kLong)) + n0).view({G, 1}))
                                  .view({1, G, 1, n});
  if (p.aggregation == Aggregation::kResidual || p.aggregation == Aggregation::kMean) {
    weights = readable.to(opts.dtype()).expand({H, G, C, n});
    if (p.aggregation == Aggregation::kMean) {
      w_on = (1.0 / (at::arange(G, opts) + static_cast<double>(1 + n0))).view({1, G, 1, 1});
      weights = weights * w_on;
    }
    return;
  }
  // Gated: grm, soup (identical for matrix memory), ssc.
  const at::Tensor counts = at::arange(1, C + 1, opts).view({1, 1, C, 1});
  const at::Tensor z_on = (u * (ks_run / counts)).sum(-1, true) * p.gate_scale;
  at::Tensor z = at::bmm(u.reshape({H, G * C, dk}), summary.transpose(-1, -2)).view({H, G, C, n}) *
                 p.gate_scale;
  z = z.masked_fill(readable.logical_not(), kNegInf);
  if (p.aggregation == Aggregation::kSsc) {
    z = z.masked_fill(TopKMask(z, p.top_k).logical_and(readable).logical_not(), kNegInf);
  }
  const at::Tensor gates = at::cat({z_on, z}, -1).softmax(-1);  // [H, G, C, 1 + n]
  w_on = gates.narrow(-1, 0, 1);
  weights = gates.narrow(-1, 1, n);
}

// o_t += sum_i w_ti M_i^T q_t (span_prefill_cpu.h's SpanReadCpu) as
// written-out loops, into o [H, G, C, dv] (the online read, already weighted
// unless `mode` weighs it); `weights` is read for kGiven only.
at::Tensor ReadLoops(const Span& sp, int64_t n0, kernels::SpanWeights mode, const at::Tensor& q,
                     const at::Tensor& m_all, const at::Tensor& o_in, const at::Tensor& weights) {
  const at::Tensor o = o_in.contiguous();
  KernelInputs in;
  kernels::SpanReadArgs ra;
  ra.heads = sp.H;
  ra.segments = sp.G;
  ra.seg_len = sp.C;
  ra.n = m_all.size(1);
  ra.n0 = n0;
  ra.dk = m_all.size(2);
  ra.dv = m_all.size(3);
  ra.weights = mode;
  ra.q = in(q);
  ra.ckpt = in(m_all);
  if (mode == kernels::SpanWeights::kGiven) ra.w = in(weights);
  ra.o = o.data_ptr<float>();
  kernels::SpanReadCpu(ra);
  return o;
}

// The same with LibTorch, as one product per head: the outer products
// w_t (x) q_t, [tokens, n * dk], times the checkpoints stacked [n * dk, dv].
// For the whole span at once, or segment by segment (reading only what each
// segment may) when that would take more than max_outer_floats.
at::Tensor ReadBatched(const Span& sp, int64_t n0, const at::Tensor& q, const at::Tensor& m_all,
                       const at::Tensor& o_base, const at::Tensor& weights,
                       int64_t max_outer_floats) {
  const int64_t H = sp.H, G = sp.G, C = sp.C, n = m_all.size(1), dk = m_all.size(2),
                dv = m_all.size(3);
  const at::Tensor m_rows = m_all.reshape({H, n * dk, dv});
  if (H * G * C * n * dk <= max_outer_floats) {
    const at::Tensor outer = (weights.unsqueeze(-1) * q.unsqueeze(-2)).reshape({H, G * C, n * dk});
    return o_base + at::bmm(outer, m_rows).view({H, G, C, dv});
  }
  std::vector<at::Tensor> o_seg;
  o_seg.reserve(G);
  for (int64_t g = 0; g < G; ++g) {
    at::Tensor og = o_base.select(1, g);
    const int64_t ng = n0 + g;
    if (ng > 0) {
      const at::Tensor outer =
          (weights.select(1, g).narrow(-1, 0, ng).unsqueeze(-1) * q.select(1, g).unsqueeze(-2))
              .reshape({H, C, ng * dk});
      og = og + at::bmm(outer, m_rows.narrow(1, 0, ng * dk));
    }
    o_seg.push_back(og);
  }
  return at::stack(o_seg, 1);
}

}  // namespace

SpanMixerOutputs SpanMixer(const McLayerParams& p, const SpanMixerInputs& in) {
  const int64_t H = in.q.size(0), T = in.q.size(1), dk = in.q.size(2), dv = in.v.size(2);
  const int64_t C = p.segment_length;
  Span sp{H, T, C, (in.count0 + T + C - 1) / C, in.count0, 0};
  sp.back = sp.G * C - in.count0 - T;
  const int64_t G = sp.G, m = sp.closed();
  const bool delta = p.rule == MemoryRule::kDelta;
  const auto opts = in.q.options();
  const bool cpu = in.cpu_loops && in.q.is_cpu() && in.q.scalar_type() == at::kFloat;

  const at::Tensor q = Segments(sp, in.q), k = Segments(sp, in.k), v = Segments(sp, in.v);
  const at::Tensor incl = at::ones({C, C}, opts.dtype(at::kBool)).tril();
  at::Tensor decay;  // D [H, G, C, C] (or [C, C]), zero above the diagonal
  at::Tensor a;      // A [H, G, C, 1]
  at::Tensor tail;   // A_C / A_j [H, G, C, 1]
  at::Tensor a_end;  // A_C [H, G, 1, 1]
  if (p.scalar_decay) {
    const at::Tensor cum = Segments(sp, in.log_alpha).cumsum(-1);  // [H, G, C]
    decay = (cum.unsqueeze(-1) - cum.unsqueeze(-2)).masked_fill(incl.logical_not(), kNegInf).exp();
    a = cum.exp().unsqueeze(-1);
    const at::Tensor last = cum.narrow(-1, C - 1, 1);  // [H, G, 1]
    tail = (last - cum).exp().unsqueeze(-1);
    a_end = last.exp().unsqueeze(-1);
  } else {
    decay = incl.to(opts.dtype());
  }

  const at::Tensor beta = delta ? Segments(sp, in.beta) : at::Tensor();  // [H, G, C]
  SpanMixerOutputs out;
  if (m > 0) out.closed_ckpt = at::empty({m, H, dk, dv}, opts);
  const Online on{q, k, v, beta, decay, a, tail, a_end};
  const at::Tensor o_on =
      cpu ? OnlineLoops(p, sp, on, in.s0, out) : OnlineBatched(p, sp, on, in.s0, out);

  // Key sums of the open segment, token by token.
  const at::Tensor ks_run = k.cumsum(2);  // [H, G, C, dk]
  ks_run.select(1, 0).add_(in.ks0.unsqueeze(1));
  const at::Tensor seg_sum = ks_run.select(2, C - 1);  // [H, G, dk]
  if (m > 0) out.closed_summary = seg_sum.narrow(1, 0, m).transpose(0, 1) / static_cast<double>(C);
  out.ks_end = m == G ? at::zeros_like(in.ks0) : seg_sum.select(1, G - 1).clone();

  auto finish = [&](const at::Tensor& o) {  // [H, G, C, dv] -> [H, T, dv]
    out.o = o.reshape({H, G * C, dv}).narrow(1, sp.front, T);
    return out;
  };
  const int64_t n0 = in.ckpt.defined() ? in.ckpt.size(1) : 0;
  const int64_t n = n0 + G - 1;  // checkpoints the last segment reads
  if (p.aggregation == Aggregation::kNone || n == 0) return finish(o_on);

  // Every checkpoint the span reads, as the cache holds it.
  std::vector<at::Tensor> ckpts, sums;
  if (n0 > 0) {
    ckpts.push_back(in.ckpt);
    sums.push_back(in.ckpt_summary);
  }
  if (G > 1) {
    const at::ScalarType held =
        p.ckpt_dtype == kernels::CkptDtype::kBFloat16 ? at::kBFloat16 : at::kFloat;
    ckpts.push_back(out.closed_ckpt.narrow(0, 0, G - 1).to(held).to(at::kFloat).transpose(0, 1));
    sums.push_back(out.closed_summary.narrow(0, 0, G - 1).transpose(0, 1));
  }
  const at::Tensor m_all = at::cat(ckpts, 1);  // [H, n, dk, dv]
  // On the CPU residual and mean weigh as they read.
  if (cpu && (p.aggregation == Aggregation::kResidual || p.aggregation == Aggregation::kMean)) {
    const kernels::SpanWeights mode = p.aggregation == Aggregation::kMean
                                          ? kernels::SpanWeights::kMean
                                          : kernels::SpanWeights::kResidual;
    return finish(ReadLoops(sp, n0, mode, q, m_all, o_on, at::Tensor()));
  }
  at::Tensor weights, w_on;
  ReadWeights(p, sp, n0, in.u.defined() ? Segments(sp, in.u) : at::Tensor(), ks_run,
              at::cat(sums, 1), weights, w_on);
  const at::Tensor o_base = w_on.defined() ? o_on * w_on : o_on;
  return finish(cpu ? ReadLoops(sp, n0, kernels::SpanWeights::kGiven, q, m_all, o_base, weights)
                    : ReadBatched(sp, n0, q, m_all, o_base, weights, in.max_outer_floats));
}

}  // namespace mcserve::model
