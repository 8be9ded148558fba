// The MC mixer over a span of T tokens of one session that may cross
// segment boundaries (mc-model.md §4-5), equal to feeding the tokens one at a
// time. The span is padded to whole segments (zero keys, values and queries,
// no decay), every segment's own products run as one batched product over
// the span's segments (LibTorch's ops; on the CPU, written-out loops over the
// segments instead: cpu_loops), and only the state recurrence from one
// segment to the next is sequential. The checkpoints the span closes are read by its later
// segments as the cache would hold them (rounded to params.ckpt_dtype).
//
// The same derivation as chunk_mixer.h, with the delta rule's solve split
// so that it does not need the state carried in: per segment,
//   U = W - Y S_0,  W = L^-1 diag(beta) V,  Y = L^-1 diag(beta A) K,
// where L is chunk_mixer.h's unit lower-triangular matrix.
//
// Numerics depend on where the span starts and ends (its padding and its
// batch of segments): two prefills of the same tokens agree bit for bit
// only when their spans do (McModel aligns them to a grid of absolute
// positions for that reason).
#ifndef MCSERVE_SERVER_MODEL_SPAN_MIXER_H_
#define MCSERVE_SERVER_MODEL_SPAN_MIXER_H_

#include <ATen/ATen.h>

#include <cstdint>

#include "server/kernels/mc_params.h"
#include "server/model/chunk_mixer.h"

namespace mcserve::model {

// The chunk mixer's inputs, with count0 (tokens of the open segment before
// the span) anywhere in [0, C) and T any length.
struct SpanMixerInputs : ChunkMixerInputs {
  // Largest [H, tokens, n * dk] tensor of per-token outer products the read
  // builds for the whole span; above it, the read goes segment by segment.
  int64_t max_outer_floats = int64_t{1} << 22;
  // On the CPU in float32, the solve, the recurrence and the read run as
  // written-out loops (server/kernels/span_prefill_cpu.h); false runs
  // LibTorch's batched ops there too, as on the GPU (for tests).
  bool cpu_loops = true;
};

struct SpanMixerOutputs {
  at::Tensor o;       // [H, T, dv] aggregated read, before o_norm
  at::Tensor s_end;   // [H, dk, dv] state after the span (reset if it closes a segment and the
                      // boundary resets)
  at::Tensor ks_end;  // [H, dk]     key sum after the span (zero if it closes a segment)
  // The state and key summary at each boundary the span closes, oldest first
  // (before any reset): [m, H, dk, dv] and [m, H, dk], float32.
  at::Tensor closed_ckpt;
  at::Tensor closed_summary;
};

SpanMixerOutputs SpanMixer(const kernels::McLayerParams& p, const SpanMixerInputs& in);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_SPAN_MIXER_H_
