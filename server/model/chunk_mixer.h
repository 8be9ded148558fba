// The MC mixer over a chunk of T tokens of one session in parallel form
// (mc-model.md §4-5): matrix products over the chunk with the state carried
// in and out, equal to feeding the tokens one at a time.
//
// Contract: the chunk lies inside one segment (it may end exactly at the
// segment's last token but never crosses it), so the set of checkpoints every
// token reads is the same. The caller writes the checkpoint when the chunk
// closes its segment.
//
// Derivation. With A_t = prod_{i<=t} alpha_i and D_tj = A_t / A_j (j <= t),
// both rules give S_t = A_t S_0 + sum_{j<=t} D_tj k_j u_j^T, where u = v for
// hebbian and, for delta, u solves the unit lower-triangular system
//   (I + diag(beta) strict_tril(K K^T . D)) U = diag(beta) (V - diag(A) K S_0).
// Then O_on = diag(A) Q S_0 + (tril(Q K^T) . D) U and
// S_T = A_T S_0 + K^T diag(A_T / A) U. Ratios are formed from cumulative
// log-decays, so nothing overflows.
#ifndef MCSERVE_SERVER_MODEL_CHUNK_MIXER_H_
#define MCSERVE_SERVER_MODEL_CHUNK_MIXER_H_

#include <ATen/ATen.h>

#include <cstdint>

#include "server/kernels/mc_params.h"

namespace mcserve::model {

struct ChunkMixerInputs {
  at::Tensor q, k, v;       // [H, T, dk], [H, T, dk], [H, T, dv]; q and k normalised
  at::Tensor u;             // [H, T, dk]; undefined unless the aggregation gates
  at::Tensor log_alpha;     // [H, T]; undefined unless scalar decay
  at::Tensor beta;          // [H, T]; undefined unless delta rule
  at::Tensor s0;            // [H, dk, dv] state before the chunk
  at::Tensor ks0;           // [H, dk]     key sum of the open segment before the chunk
  int64_t count0 = 0;       // tokens of the open segment before the chunk
  at::Tensor ckpt;          // [H, n, dk, dv] float32 checkpoints readable (n >= 0)
  at::Tensor ckpt_summary;  // [H, n, dk]
};

struct ChunkMixerOutputs {
  at::Tensor o;       // [H, T, dv] aggregated read, before o_norm
  at::Tensor s_end;   // [H, dk, dv] state after the chunk
  at::Tensor ks_end;  // [H, dk]     key sum after the chunk
};

ChunkMixerOutputs ChunkMixer(const kernels::McLayerParams& p, const ChunkMixerInputs& in);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_CHUNK_MIXER_H_
