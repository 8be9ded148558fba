// Configs of flash-linear-attention (fla) checkpoints in the Hugging Face
// layout (research/fla-models.md): config.json with model_type "delta_net"
// or "gated_deltanet", read into a ModelConfig of that family, and the MC
// overlay (mc-model.md §10) that puts Memory Caching around their memory.
//
// Overlay file (mc_config.json beside the checkpoint, or --mc_config):
//   {"aggregation": "none" | "residual" | "mean" | "grm" | "soup" | "ssc",
//    "segment_length": C >= 1, "top_k": k >= 1 (ssc only),
//    "boundary": "continue" (default) | "reset", "gate_scale": 1.0,
//    "router": "u_proj" | "query"}   (default: u_proj when the checkpoint
//                                     has router weights, else query)
// No overlay: aggregation none, which is fla's model exactly. With
// aggregation none the segment length keeps no checkpoints; it is only the
// block size at which the prefix cache stores states (default kFlaBlock).
//
// Every config field fla's model would act on and the server does not
// implement (hybrid attention layers, attnres, another activation, ...) is
// refused with a message naming it; training-only fields are accepted.
#ifndef MCSERVE_SERVER_MODEL_FLA_CONFIG_H_
#define MCSERVE_SERVER_MODEL_FLA_CONFIG_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/model/config.h"

namespace mcserve::model {

// Prefix-cache block (segment length) of fla models served without MC.
inline constexpr int32_t kFlaBlock = 64;

// True for the model_type values this file reads.
bool IsFlaModelType(absl::string_view model_type);

// The "model_type" of a config.json text ("" when absent or not a string).
absl::StatusOr<std::string> PeekModelType(absl::string_view json_text);

// Parses an fla config.json. The result has aggregation none and the
// SentencePiece tokenizer kind (the caller sets tokenizer_path).
absl::StatusOr<ModelConfig> ParseFlaConfig(absl::string_view json_text);

// Applies an overlay to an fla config; `source` names the file in errors.
// Returns the router the overlay asks for (nullopt: not given).
absl::StatusOr<std::optional<Router>> ApplyMcOverlay(absl::string_view json_text,
                                                     const std::string& source, ModelConfig& c);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_FLA_CONFIG_H_
