// The model's config.json (mc-model.md §2): parsed strictly, so a value the
// server does not understand is a load error that names the field, never a
// guess.
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

struct ModelConfig {
  std::string model_type = "mc-lm";
  int32_t vocab_size = 0;
  int32_t d_model = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t head_dim = 0;
  int32_t d_ff = 0;
  double rms_eps = 1e-6;
  bool tie_embeddings = false;
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

  // The aggregation reads gate logits, so the model has u_proj.
  bool HasGate() const;
  int32_t inner_dim() const { return n_heads * head_dim; }
  kernels::McLayerParams LayerParams(CkptDtype ckpt_dtype) const;
};

absl::string_view RuleName(MemoryRule r);
absl::string_view AggregationName(Aggregation a);
absl::string_view BoundaryName(Boundary b);
absl::string_view CkptDtypeName(CkptDtype d);
absl::StatusOr<CkptDtype> ParseCkptDtype(absl::string_view name);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_CONFIG_H_
