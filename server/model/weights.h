// The tensors of an MC model (mc-model.md §3): the exact set a config needs,
// loading them from safetensors with errors that name the tensor, and
// seeded random weights for tests and benchmarks.
#ifndef MCSERVE_SERVER_MODEL_WEIGHTS_H_
#define MCSERVE_SERVER_MODEL_WEIGHTS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/config.h"
#include "server/model/safetensors.h"

namespace mcserve::model {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor the config requires, in file order (mc-lm's names, or fla's
// for the fla families: fla_weights.h).
std::vector<TensorSpec> ExpectedTensors(const ModelConfig& c);

struct LayerWeights {
  at::Tensor mixer_norm;  // [D]
  // mc-lm: [P*H*d, D]: q, k, v, g and (with a gate) u, fused.
  // fla: rows q [H*dk], k [H*dk], v [HV*dv], then g [HV*dv] with use_gate
  // and u [H*dk] with router weights.
  at::Tensor in_proj;
  at::Tensor a_w, a_b;        // [H, D], [H] (scalar decay only; fla: a_proj [HV, D], no bias)
  at::Tensor b_w, b_b;        // [H, D], [H] (delta rule only; fla: b_proj, no bias; absent
                              // when use_beta is false)
  at::Tensor conv;            // fla with short convolution: [2*H*dk + HV*dv, W] for q, k, v
  at::Tensor a_log, dt_bias;  // gated_deltanet: [HV] each
  // Deep memory (mc-model.md §9): the initial memory packed as the online
  // state holds it ([H, 2*E*d, d]: W1 then W2, deep_memory.h), the memory's
  // LayerNorm gain [H, d], and the momentum gate (momentum only).
  at::Tensor mem_init;
  at::Tensor mem_ln;
  at::Tensor m_w, m_b;  // [H, D], [H]
  at::Tensor o_norm;    // [d] (fla: [dv])
  at::Tensor o_proj;    // [D, H*d]
  at::Tensor mlp_norm;  // [D]
  at::Tensor gate_up;   // [2*d_ff, D]: gate then up, fused
  at::Tensor down;      // [D, d_ff]
};

struct Weights {
  at::Tensor embed;  // [V, D]
  std::vector<LayerWeights> layers;
  at::Tensor norm;     // [D]
  at::Tensor lm_head;  // [V, D] (the embedding when tied)
  StDtype file_dtype = StDtype::kF32;
  int64_t num_parameters = 0;
};

// Checks `tensors` (a checkpoint's files, checkpoint_files.h) against the
// config (missing, extra, wrong shape: named) and loads float32 copies onto
// `device`, one tensor at a time.
// `file_of` (optional) names the file holding a tensor, for the messages.
absl::StatusOr<Weights> LoadWeights(
    const ModelConfig& c, const std::map<std::string, StTensor>& tensors, const at::Device& device,
    const std::function<std::string(const std::string&)>& file_of = nullptr);

// For the family loaders: the named tensor of `found` as float32 on `device`.
using FoundTensors = std::map<std::string, const StTensor*>;
absl::StatusOr<at::Tensor> TakeTensor(const FoundTensors& found, const std::string& name,
                                      const at::Device& device);

// Seeded random weights that give a well-conditioned model: projections
// ~ N(0, 1/fan_in), norms 1, decay bias so alpha starts near 0.9.
std::vector<StWriteTensor> RandomWeights(const ModelConfig& c, uint64_t seed,
                                         StDtype dtype = StDtype::kF32);

// Writes config.json and model.safetensors of a random model into `dir`
// (created if missing).
absl::Status WriteRandomModel(const ModelConfig& c, const std::string& dir, uint64_t seed,
                              StDtype dtype = StDtype::kF32);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_WEIGHTS_H_
