// Weights of fla checkpoints (research/fla-models.md, "Weight names"): the
// exact tensor set a DeltaNet or GatedDeltaNet config needs, and loading
// them into LayerWeights (q, k, v, g and router projections fused, the three
// short-convolution kernels stacked).
#ifndef MCSERVE_SERVER_MODEL_FLA_WEIGHTS_H_
#define MCSERVE_SERVER_MODEL_FLA_WEIGHTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/model/config.h"
#include "server/model/weights.h"

namespace mcserve::model {

// Every tensor an fla config requires (u_proj only with router weights).
std::vector<TensorSpec> ExpectedFlaTensors(const ModelConfig& c);

// True for a tensor the checkpoint may hold that the config does not read:
// a router projection (attn.u_proj) when serving without gated MC or with
// the query router, and lm_head.weight of a tied model.
bool IsIgnoredFlaTensor(const ModelConfig& c, const std::string& name);

// The name of layer `l`'s router weights ("model.layers.{l}.attn.u_proj.weight").
std::string FlaRouterName(int l);

// Fills w.embed, w.layers, w.norm, w.lm_head from the checked tensors.
absl::Status LoadFlaWeights(const ModelConfig& c, const FoundTensors& found,
                            const at::Device& device, Weights& w);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_FLA_WEIGHTS_H_
