// The span mixer's (server/model/span_mixer.h) three costly steps on the
// CPU, written out: at a head size of 32-128 and a segment of 32-64 tokens
// LibTorch's batched ops spend more in dispatch, temporaries and per-matrix
// BLAS calls than in arithmetic (docs/benchmarks.md).
//
// Framework-free: raw row-major float32 pointers, no allocation except where
// stated. H heads, G segments of C tokens, dk key and dv value dims.
#ifndef MCSERVE_SERVER_KERNELS_SPAN_PREFILL_CPU_H_
#define MCSERVE_SERVER_KERNELS_SPAN_PREFILL_CPU_H_

#include <cstdint>

namespace mcserve::kernels {

// Solves (I + L) X = B in place for `batch` unit lower-triangular systems:
// lower [batch, n, n] holds L strictly below its diagonal (the diagonal and
// above are not read); x [batch, n, cols] holds B on entry and X on return.
void SolveUnitLowerCpu(int64_t batch, int64_t n, int64_t cols, const float* lower, float* x);

// The sequential part of a span: segment by segment, per head,
//   U_g = W_g - Y_g S          (delta rule; U_g = W_g otherwise)
//   S   = a_g S + K_g^T U_g    (a_g = 1 without decay)
// and at a boundary g < closed: the state is copied out, then zeroed when
// `reset`.
struct SpanRecurrenceArgs {
  int64_t heads = 0, segments = 0, seg_len = 0, dk = 0, dv = 0;
  int64_t closed = 0;  // boundaries the span closes: segments 0 .. closed-1
  bool reset = false;
  const float* w = nullptr;       // [H, G, C, dv] W (delta) or V
  const float* y = nullptr;       // [H, G, C, dk] Y; null unless delta
  const float* k = nullptr;       // [H, G, C, dk] keys as written (decay folded in)
  const float* a_end = nullptr;   // [H, G] decay over each segment; null without decay
  const float* s0 = nullptr;      // [H, dk, dv] state before the span
  float* s_before = nullptr;      // [H, G, dk, dv] out: the state each segment starts from
  float* u = nullptr;             // [H, G, C, dv] out: U
  float* closed_state = nullptr;  // [closed, H, dk, dv] out: the states at the boundaries
  float* s_end = nullptr;         // [H, dk, dv] out: the state after the span
};
void SpanRecurrenceCpu(const SpanRecurrenceArgs& a);

// The read of cached checkpoints: segment g's tokens read the first
// min(n0 + g, n) checkpoints,
//   o_t += sum_i w_ti (M_i^T q_t).
struct SpanReadArgs {
  int64_t heads = 0, segments = 0, seg_len = 0, n = 0, n0 = 0, dk = 0, dv = 0;
  const float* q = nullptr;     // [H, G, C, dk]
  const float* w = nullptr;     // [H, G, C, n] weight of each checkpoint for each token
  const float* ckpt = nullptr;  // [H, n, dk, dv] M_i
  float* o = nullptr;           // [H, G, C, dv] accumulated into
};
void SpanReadCpu(const SpanReadArgs& a);

}  // namespace mcserve::kernels

#endif  // MCSERVE_SERVER_KERNELS_SPAN_PREFILL_CPU_H_
