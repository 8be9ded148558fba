// The span mixer's (server/model/span_mixer.h) three costly steps on the
// CPU, written out: at a head size of 32-128 and a segment of 32-64 tokens
// LibTorch's batched ops spend more in dispatch, temporaries and per-matrix
// BLAS calls than in arithmetic (docs/benchmarks.md).
//
// Framework-free: raw row-major float32 pointers; each call allocates its
// own small scratch (C x C blocks, a segment's weights). H heads, G segments
// of C tokens, dk key and dv value dims. `isa` picks the instruction set's
// copy (the best this CPU runs by default; one it lacks falls back to that);
// tests pass each to compare them.
#ifndef MCSERVE_SERVER_KERNELS_SPAN_PREFILL_CPU_H_
#define MCSERVE_SERVER_KERNELS_SPAN_PREFILL_CPU_H_

#include <cstdint>

#include "server/kernels/cpu_isa.h"

namespace mcserve::kernels {

// The online part of a span (mc-model.md §4): per head, segment by segment,
// with the segment's own products in the chunked form of
// server/model/span_mixer.h and only the state carried between segments,
//   delta rule: (I + L) [W | Y] = [diag(beta) V | diag(beta A) K],
//               L_tj = beta_t D_tj (k_t . k_j) for j < t, U = W - Y S;
//   otherwise   U = V;
//   o_t = A_t (q_t S) + sum_{j <= t} D_tj (q_t . k_j) u_j,
//   S  <- A_C S + sum_t (A_C / A_t) k_t u_t^T,
// and at a boundary g < closed the state is copied out, then zeroed when
// `reset`.
struct SpanOnlineArgs {
  int64_t heads = 0, segments = 0, seg_len = 0, dk = 0, dv = 0;
  int64_t closed = 0;  // boundaries the span closes: after segments 0 .. closed-1
  bool reset = false;
  const float* q = nullptr;     // [H, G, C, dk]
  const float* k = nullptr;     // [H, G, C, dk]
  const float* v = nullptr;     // [H, G, C, dv]
  const float* beta = nullptr;  // [H, G, C] write strengths; null unless delta
  // Decay, all null without it (then D is 1 on and below the diagonal, A 1):
  const float* decay = nullptr;  // [H, G, C, C] D_tj = A_t / A_j on and below the diagonal, 0 above
  const float* a = nullptr;      // [H, G, C] A_t, the decay from the segment's start through t
  const float* tail = nullptr;   // [H, G, C] A_C / A_t
  const float* a_end = nullptr;  // [H, G] A_C
  const float* s0 = nullptr;     // [H, dk, dv] state before the span
  float* o = nullptr;            // [H, G, C, dv] out: o_t
  float* closed_state = nullptr;  // [closed, H, dk, dv] out: the states at the boundaries
  float* s_end = nullptr;         // [H, dk, dv] out: the state after the span
};
void SpanOnlineCpu(const SpanOnlineArgs& a, CpuIsa isa = BestCpuIsa());

// How the read weighs a token's checkpoints (w_ti) and its online read
// (w_on, o_t scaled by it first), for the r = min(n0 + g, n) it may read.
enum class SpanWeights {
  kGiven,     // w_ti from SpanReadArgs::w; o_t as given (already weighted)
  kResidual,  // w_ti = 1, w_on = 1
  kMean,      // w_ti = w_on = 1 / (1 + r)
};

// The read of cached checkpoints: segment g's tokens read the first
// r = min(n0 + g, n) checkpoints,
//   o_t = w_on o_t + sum_{i < r} w_ti (M_i^T q_t).
struct SpanReadArgs {
  int64_t heads = 0, segments = 0, seg_len = 0, n = 0, n0 = 0, dk = 0, dv = 0;
  SpanWeights weights = SpanWeights::kGiven;
  const float* q = nullptr;     // [H, G, C, dk]
  const float* ckpt = nullptr;  // [H, n, dk, dv] M_i
  const float* w = nullptr;     // [H, G, C, n] kGiven only
  float* o = nullptr;  // [H, G, C, dv] the online read on entry, the aggregated read on return
};
void SpanReadCpu(const SpanReadArgs& a, CpuIsa isa = BestCpuIsa());

}  // namespace mcserve::kernels

#endif  // MCSERVE_SERVER_KERNELS_SPAN_PREFILL_CPU_H_
