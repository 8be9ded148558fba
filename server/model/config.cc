#include "server/model/config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/model/json_reader.h"
#include "server/util/status_macros.h"
#include "server/util/text_file.h"

namespace mcserve::model {
namespace {

using Json = nlohmann::json;

template <typename E>
E FromName(absl::string_view name, std::initializer_list<E> all, absl::string_view (*to_name)(E)) {
  for (E e : all) {
    if (to_name(e) == name) return e;
  }
  return *all.begin();
}

absl::Status ParseDeepMemory(ObjectReader& r, ModelConfig& c) {
  DeepMemoryConfig& m = c.deep;
  ASSIGN_OR_RETURN(m.expansion, r.Int("expansion", int64_t{4}, 1));
  ASSIGN_OR_RETURN(m.chunk, r.Int("chunk", int64_t{1}, 1));
  ASSIGN_OR_RETURN(m.lr_max, r.Number("lr_max", std::nullopt));
  if (!(m.lr_max > 0.0) || !std::isfinite(m.lr_max)) {
    return FieldError("memory.lr_max", absl::StrCat("must be a finite number > 0, got ", m.lr_max));
  }
  ASSIGN_OR_RETURN(m.momentum, r.Bool("momentum", true));
  ASSIGN_OR_RETURN(m.grad_clip, r.Number("grad_clip", 0.0));
  if (!(m.grad_clip >= 0.0) || !std::isfinite(m.grad_clip)) {
    return FieldError("memory.grad_clip", absl::StrCat("must be >= 0, got ", m.grad_clip));
  }
  return absl::OkStatus();
}

absl::Status ParseMemory(const Json& obj, ModelConfig& c) {
  ObjectReader r(obj, "memory.");
  ASSIGN_OR_RETURN(std::string kind, r.Enum("kind", {"linear", "mlp"}, "linear"));
  c.memory_kind = kind == "mlp" ? MemoryKind::kMlp : MemoryKind::kLinear;
  ASSIGN_OR_RETURN(std::string rule, r.Enum("rule", {"hebbian", "delta"}));
  ASSIGN_OR_RETURN(std::string decay, r.Enum("decay", {"none", "scalar"}));
  c.rule = rule == "delta" ? MemoryRule::kDelta : MemoryRule::kHebbian;
  c.scalar_decay = decay == "scalar";
  if (c.is_deep()) RETURN_IF_ERROR(ParseDeepMemory(r, c));
  return r.NoUnknownKeys();
}

absl::Status ParseMc(const Json& obj, ModelConfig& c) {
  ObjectReader r(obj, "mc.");
  ASSIGN_OR_RETURN(std::string agg,
                   r.Enum("aggregation", {"none", "residual", "mean", "grm", "soup", "ssc"}));
  c.aggregation = FromName(agg,
                           {Aggregation::kNone, Aggregation::kResidual, Aggregation::kMean,
                            Aggregation::kGrm, Aggregation::kSoup, Aggregation::kSsc},
                           &AggregationName);
  ASSIGN_OR_RETURN(c.segment_length, r.Int("segment_length", std::nullopt, 1));
  if (c.aggregation == Aggregation::kSsc) {
    ASSIGN_OR_RETURN(c.top_k, r.Int("top_k", std::nullopt, 1));
  } else {
    ASSIGN_OR_RETURN(int64_t k, r.Int("top_k", int64_t{0}, 0));
    (void)k;  // meaningful for ssc only
    c.top_k = 0;
  }
  ASSIGN_OR_RETURN(std::string boundary, r.Enum("boundary", {"continue", "reset"}));
  c.boundary = boundary == "reset" ? Boundary::kReset : Boundary::kContinue;
  ASSIGN_OR_RETURN(double gs, r.Number("gate_scale", 1.0));
  c.gate_scale = gs;
  return r.NoUnknownKeys();
}

absl::Status ParseTokenizer(const Json& obj, ModelConfig& c) {
  ObjectReader r(obj, "tokenizer.");
  ASSIGN_OR_RETURN(std::string type, r.Enum("type", {"byte"}));
  (void)type;
  ASSIGN_OR_RETURN(c.bos_id, r.Int("bos_id", std::nullopt, 0));
  ASSIGN_OR_RETURN(c.eos_id, r.Int("eos_id", std::nullopt, 0));
  return r.NoUnknownKeys();
}

absl::Status ParseTop(const Json& j, ModelConfig& c) {
  ObjectReader r(j, "");
  ASSIGN_OR_RETURN(c.model_type, r.Enum("model_type", {"mc-lm"}));
  ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size", std::nullopt, 258));
  ASSIGN_OR_RETURN(c.d_model, r.Int("d_model", std::nullopt, 1));
  ASSIGN_OR_RETURN(c.n_layers, r.Int("n_layers", std::nullopt, 1));
  ASSIGN_OR_RETURN(c.n_heads, r.Int("n_heads", std::nullopt, 1));
  ASSIGN_OR_RETURN(c.head_dim, r.Int("head_dim", std::nullopt, 1));
  ASSIGN_OR_RETURN(c.d_ff, r.Int("d_ff", std::nullopt, 1));
  ASSIGN_OR_RETURN(double eps, r.Number("rms_eps", 1e-6));
  if (!(eps > 0.0)) return FieldError("rms_eps", "must be > 0");
  c.rms_eps = eps;
  ASSIGN_OR_RETURN(c.tie_embeddings, r.Bool("tie_embeddings"));
  ASSIGN_OR_RETURN(const Json* memory, r.Object("memory"));
  RETURN_IF_ERROR(ParseMemory(*memory, c));
  ASSIGN_OR_RETURN(const Json* mc, r.Object("mc"));
  RETURN_IF_ERROR(ParseMc(*mc, c));
  ASSIGN_OR_RETURN(const Json* tok, r.Object("tokenizer"));
  RETURN_IF_ERROR(ParseTokenizer(*tok, c));
  return r.NoUnknownKeys();
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfig::FromJson(absl::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("config.json: not valid JSON");
  }
  if (!j.is_object()) return absl::InvalidArgumentError("config.json: must be a JSON object");
  ModelConfig c;
  RETURN_IF_ERROR(ParseTop(j, c));
  RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<ModelConfig> ModelConfig::Load(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadTextFile(path));
  absl::StatusOr<ModelConfig> c = FromJson(text);
  if (!c.ok()) {
    return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  }
  return c;
}

absl::Status ModelConfig::Validate() const {
  const std::string mc = is_fla() ? "" : "mc.";  // overlays name MC fields at the top
  if (segment_length < 1) {
    return FieldError(mc + "segment_length", "must be >= 1", mc_source);
  }
  if (aggregation == Aggregation::kSsc && top_k < 1) {
    return FieldError(mc + "top_k", "must be >= 1", mc_source);
  }
  if (is_deep()) {
    if (is_fla()) return FieldError("memory.kind", "'mlp' is an mc-lm memory, not fla's");
    if (rule != MemoryRule::kDelta) {
      return FieldError("memory.rule", "must be 'delta' for memory.kind 'mlp'");
    }
    if (deep.chunk < 1 || segment_length % deep.chunk != 0) {
      return FieldError("memory.chunk", absl::StrCat("must divide mc.segment_length (",
                                                     segment_length, "), got ", deep.chunk));
    }
    if (int64_t{deep.expansion} * head_dim > (int64_t{1} << 20)) {
      return FieldError("memory.expansion", "makes the memory's hidden width too large");
    }
  }
  if (tokenizer != TokenizerKind::kByte) {
    if (bos_id < 0 || bos_id >= vocab_size)
      return FieldError("bos_token_id", "must be in [0, vocab_size)");
    if (eos_id < 0 || eos_id >= vocab_size)
      return FieldError("eos_token_id", "must be in [0, vocab_size)");
    return absl::OkStatus();  // (SentencePiece models may use one id for both)
  }
  if (vocab_size < 258) return FieldError("vocab_size", "must be >= 258 for the byte tokenizer");
  if (bos_id < 256 || bos_id >= vocab_size) {
    return FieldError("tokenizer.bos_id", "must be in [256, vocab_size)");
  }
  if (eos_id < 256 || eos_id >= vocab_size) {
    return FieldError("tokenizer.eos_id", "must be in [256, vocab_size)");
  }
  if (bos_id == eos_id) return FieldError("tokenizer.eos_id", "must differ from bos_id");
  return absl::OkStatus();
}

std::string ModelConfig::ToJson() const {
  Json j;
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["d_model"] = d_model;
  j["n_layers"] = n_layers;
  j["n_heads"] = n_heads;
  j["head_dim"] = head_dim;
  j["d_ff"] = d_ff;
  j["rms_eps"] = rms_eps;
  j["tie_embeddings"] = tie_embeddings;
  j["memory"] = {{"rule", RuleName(rule)}, {"decay", scalar_decay ? "scalar" : "none"}};
  if (is_deep()) {
    j["memory"]["kind"] = "mlp";
    j["memory"]["expansion"] = deep.expansion;
    j["memory"]["chunk"] = deep.chunk;
    j["memory"]["lr_max"] = deep.lr_max;
    j["memory"]["momentum"] = deep.momentum;
    j["memory"]["grad_clip"] = deep.grad_clip;
  }
  j["mc"] = {{"aggregation", AggregationName(aggregation)},
             {"segment_length", segment_length},
             {"boundary", BoundaryName(boundary)},
             {"gate_scale", gate_scale}};
  if (aggregation == Aggregation::kSsc) j["mc"]["top_k"] = top_k;
  j["tokenizer"] = {{"type", "byte"}, {"bos_id", bos_id}, {"eos_id", eos_id}};
  if (is_fla()) {
    // Not a loadable file for fla models (they load from fla's own config);
    // it identifies the model, e.g. in snapshot fingerprints.
    j["model_type"] = FamilyName(family);
    j["tokenizer"]["type"] = "sentencepiece";
    j["fla"] = {{"num_v_heads", fla.num_v_heads},
                {"head_v_dim", fla.head_v_dim},
                {"conv_size", fla.conv_size},
                {"qk_activation", static_cast<int>(fla.qk_activation)},
                {"qk_norm", static_cast<int>(fla.qk_norm)},
                {"use_beta", fla.use_beta},
                {"allow_neg_eigval", fla.allow_neg_eigval},
                {"use_gate", fla.use_gate},
                {"router", RouterName(router)}};
  }
  return j.dump(2);
}

bool ModelConfig::HasGate() const { return kernels::IsGated(aggregation); }

kernels::McLayerParams ModelConfig::LayerParams(CkptDtype ckpt_dtype) const {
  kernels::McLayerParams p;
  p.n_heads = state_heads();
  p.head_dim = head_dim;
  p.value_dim = value_dim();
  p.rule = rule;
  p.scalar_decay = scalar_decay;
  p.aggregation = aggregation;
  p.boundary = boundary;
  p.segment_length = segment_length;
  p.top_k = top_k;
  p.gate_scale = static_cast<float>(gate_scale);
  p.ckpt_dtype = ckpt_dtype;
  return p;
}

absl::string_view MemoryKindName(MemoryKind k) { return k == MemoryKind::kMlp ? "mlp" : "linear"; }

absl::string_view RuleName(MemoryRule r) { return r == MemoryRule::kDelta ? "delta" : "hebbian"; }

absl::string_view AggregationName(Aggregation a) {
  switch (a) {
    case Aggregation::kNone:
      return "none";
    case Aggregation::kResidual:
      return "residual";
    case Aggregation::kMean:
      return "mean";
    case Aggregation::kGrm:
      return "grm";
    case Aggregation::kSoup:
      return "soup";
    case Aggregation::kSsc:
      return "ssc";
  }
  return "?";
}

absl::string_view BoundaryName(Boundary b) { return b == Boundary::kReset ? "reset" : "continue"; }

absl::string_view CkptDtypeName(CkptDtype d) {
  return d == CkptDtype::kBFloat16 ? "bfloat16" : "float32";
}

absl::string_view FamilyName(ModelFamily f) {
  switch (f) {
    case ModelFamily::kMcLm:
      return "mc-lm";
    case ModelFamily::kDeltaNet:
      return "delta_net";
    case ModelFamily::kGatedDeltaNet:
      return "gated_deltanet";
  }
  return "?";
}

absl::string_view RouterName(Router r) { return r == Router::kQuery ? "query" : "u_proj"; }

absl::StatusOr<CkptDtype> ParseCkptDtype(absl::string_view name) {
  if (name == "float32") return CkptDtype::kFloat32;
  if (name == "bfloat16") return CkptDtype::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown checkpoint dtype '", name, "' (want float32 or bfloat16)"));
}

}  // namespace mcserve::model
