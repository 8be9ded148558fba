// The model's config: mc-lm's config.json (mc-model.md §2), or an fla
// checkpoint's Hugging Face config.json (delta_net, gated_deltanet) with MC
// settings from an overlay (mc-model.md §10; server/model/fla_config.h).
// Parsed strictly, so a value the server does not understand is a load error
// that names the field, never a guess.
#ifndef MCSERVE_SERVER_MODEL_CONFIG_H_
#define MCSERVE_SERVER_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/kernels/mc_params.h"

namespace mcserve::model {

using kernels::Aggregation;
using kernels::Boundary;
using kernels::CkptDtype;
using kernels::MemoryRule;

// Which tokenizer turns text into the model's ids.
enum class TokenizerKind { kByte, kSentencePiece };

// The layer math: mc-lm's own (mc-model.md §4), or fla's DeltaNet or
// GatedDeltaNet layers (research/fla-models.md) with MC around the memory.
enum class ModelFamily { kMcLm, kDeltaNet, kGatedDeltaNet };
enum class QkActivation { kSilu, kRelu, kElu, kIdentity };
enum class QkNorm { kL2, kSum };
// Where grm, soup and ssc get the router input u: a learned u_proj, or the
// l2-normalised query (fla models without router weights).
enum class Router { kProj, kQuery };

// What the memory of a head is: a matrix S (mc-model.md §4), or a small MLP
// trained online (Titans' deep memory, mc-model.md §9).
enum class MemoryKind { kLinear, kMlp };

// Deep memory options (memory.kind = mlp only).
struct DeepMemoryConfig {
  int32_t expansion = 4;   // E: the MLP's hidden width is E * head_dim
  int32_t chunk = 1;       // b: the memory is written once per b tokens
  double lr_max = 0.0;     // theta_t = lr_max * sigmoid(W_b x + b_b)
  bool momentum = true;    // m_proj gates a momentum of the writes
  double grad_clip = 0.0;  // 0: off
};

// fla layer options (families kDeltaNet and kGatedDeltaNet only).
struct FlaLayerConfig {
  int32_t num_v_heads = 0;  // value heads HV, a multiple of n_heads
  int32_t head_v_dim = 0;   // dv
  int32_t conv_size = 0;    // short convolution width; 0: no convolution
  QkActivation qk_activation = QkActivation::kSilu;
  QkNorm qk_norm = QkNorm::kL2;
  bool use_beta = true;
  bool allow_neg_eigval = false;
  bool use_gate = false;  // output gate g_proj and the gated output norm
};

struct ModelConfig {
  std::string model_type = "mc-lm";
  ModelFamily family = ModelFamily::kMcLm;
  FlaLayerConfig fla;  // families kDeltaNet, kGatedDeltaNet
  Router router = Router::kProj;
  // Where the MC settings came from ("config.json", or an overlay's path).
  std::string mc_source = "config.json";
  int32_t vocab_size = 0;
  int32_t d_model = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;   // query/key heads H
  int32_t head_dim = 0;  // key dimensions per head dk (mc-lm: d, also the value dims)
  int32_t d_ff = 0;      // MLP width
  double rms_eps = 1e-6;
  bool tie_embeddings = false;
  MemoryKind memory_kind = MemoryKind::kLinear;
  DeepMemoryConfig deep;  // memory_kind kMlp
  MemoryRule rule = MemoryRule::kHebbian;
  bool scalar_decay = false;
  Aggregation aggregation = Aggregation::kNone;
  int32_t segment_length = 1;
  int32_t top_k = 0;  // 0 unless ssc
  Boundary boundary = Boundary::kContinue;
  double gate_scale = 1.0;
  int32_t bos_id = 256;
  int32_t eos_id = 257;
  TokenizerKind tokenizer = TokenizerKind::kByte;
  // kSentencePiece: path of the SentencePiece model (tokenizer.model).
  std::string tokenizer_path;

  // Parses and validates config.json text. Errors name the field.
  static absl::StatusOr<ModelConfig> FromJson(absl::string_view text);
  // Reads and parses `path`.
  static absl::StatusOr<ModelConfig> Load(const std::string& path);
  // Serialises to the format FromJson reads.
  std::string ToJson() const;
  // Checks the cross-field rules (also run by FromJson).
  absl::Status Validate() const;

  // The aggregation reads gate logits (router input u and summaries).
  bool HasGate() const;
  // The checkpoint carries u_proj weights (mc-lm: whenever HasGate).
  bool HasRouterProj() const { return HasGate() && router == Router::kProj; }
  bool is_fla() const { return family != ModelFamily::kMcLm; }
  bool is_deep() const { return memory_kind == MemoryKind::kMlp; }
  // Deep memory: the MLP's hidden width E * d.
  int32_t deep_hidden() const { return deep.expansion * head_dim; }
  int32_t inner_dim() const { return n_heads * head_dim; }
  // The memory: state_heads() matrices of head_dim x value_dim per layer
  // (fla: one per value head; grouped query/key heads are repeated).
  int32_t state_heads() const { return is_fla() ? fla.num_v_heads : n_heads; }
  int32_t value_dim() const { return is_fla() ? fla.head_v_dim : head_dim; }
  // Widths of the fla projections: keys (H * dk) and values (HV * dv).
  int32_t key_width() const { return n_heads * head_dim; }
  int32_t value_width() const { return state_heads() * value_dim(); }
  // A memory (online or checkpoint) is a ckpt_rows() x value_dim() matrix per
  // head: S itself (rows = head_dim), or a deep memory's W1 [d, E*d] and W2
  // [E*d, d] packed one after the other (rows = 2*E*d; deep_memory.h).
  int32_t ckpt_rows() const { return is_deep() ? 2 * deep_hidden() : head_dim; }
  kernels::McLayerParams LayerParams(CkptDtype ckpt_dtype) const;
};

absl::string_view RuleName(MemoryRule r);
absl::string_view MemoryKindName(MemoryKind k);
absl::string_view AggregationName(Aggregation a);
absl::string_view BoundaryName(Boundary b);
absl::string_view CkptDtypeName(CkptDtype d);
absl::string_view FamilyName(ModelFamily f);
absl::string_view RouterName(Router r);
absl::StatusOr<CkptDtype> ParseCkptDtype(absl::string_view name);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_CONFIG_H_
