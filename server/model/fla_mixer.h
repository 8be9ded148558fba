// The fla layers' mixer around the MC memory (research/fla-models.md, "One
// layer"; mc-model.md §10): projections, the short causal convolutions with
// their per-session caches, activations, q/k normalisation and the dk^-0.5
// query scale, beta and GatedDeltaNet's decay, grouped value heads, and the
// (gated) output norm. The memory itself is the shared MC kernel / chunk
// mixer, which sees one matrix per value head: query/key heads are repeated
// across the value heads that read them (value head j reads key head
// j / (HV / H)).
#ifndef MCSERVE_SERVER_MODEL_FLA_MIXER_H_
#define MCSERVE_SERVER_MODEL_FLA_MIXER_H_

#include <ATen/ATen.h>

#include "server/model/config.h"
#include "server/model/mixer_inputs.h"
#include "server/model/weights.h"

namespace mcserve::model {

// Width of a layer's convolution cache rows: q, k and v channels.
int64_t FlaConvChannels(const ModelConfig& c);

// Decode: z [B, D] normalised inputs of B sessions; `conv_pool` is the
// layer's convolution caches [slots, C, W] (a view, updated in place at
// `slots` [B] int64 on its device; ignored without convolution).
// Prefill: z [T, D] of one session; `conv_state` its cache [C, W] (a view,
// updated in place).
// Returns q scaled by dk^-0.5, k normalised, v, u (gated MC only), the
// output gate g (use_gate only) [N, HV*dv], log_alpha (GatedDeltaNet's g) and beta, all per value
// head.
MixerInputs ProjectFlaDecode(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& z,
                             const at::Tensor& conv_pool, const at::Tensor& slots);
MixerInputs ProjectFlaPrefill(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& z,
                              const at::Tensor& conv_state);

// o [N, HV, dv] aggregated reads -> the layer's output [N, D].
at::Tensor FlaMixerOut(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& o,
                       const at::Tensor& g);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_FLA_MIXER_H_
