// Projections of the MC mixer (mc-model.md §4), shared by decode and
// prefill: q, k, v, u, the output gate and the decay/beta gates.
#ifndef MCSERVE_SERVER_MODEL_MIXER_INPUTS_H_
#define MCSERVE_SERVER_MODEL_MIXER_INPUTS_H_

#include <ATen/ATen.h>

#include "server/model/config.h"
#include "server/model/weights.h"

namespace mcserve::model {

struct MixerInputs {
  at::Tensor q, k, v;    // [N, H, d]; q and k l2-normalised
  at::Tensor u;          // [N, H, d]; undefined unless the aggregation gates
  at::Tensor g;          // [N, H*d] output gate pre-activation
  at::Tensor a_logit;    // [N, H] decay pre-activation (mc-lm scalar decay); else undefined
  at::Tensor log_alpha;  // [N, H] log of the decay (fla gated_deltanet); else undefined
  at::Tensor beta;       // [N, H] sigmoid(W_b x + b_b); undefined unless delta
                         // (deep memory: the step theta = lr_max * sigmoid(W_b x + b_b))
  at::Tensor m_logit;    // [N, H] deep memory's momentum logit W_m x + b_m; else undefined
};

// z: [N, D] normalised layer input.
MixerInputs ProjectMixer(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& z);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_MIXER_INPUTS_H_
