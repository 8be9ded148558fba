#include "server/model/fla_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/model/json_reader.h"
#include "server/util/status_macros.h"

namespace mcserve::model {
namespace {

using Json = nlohmann::json;

// Fields that only steer training, kernels or Hugging Face bookkeeping: they
// do not change the function the model computes.
constexpr const char* kInert[] = {
    "architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path", "attn_mode",
    "use_cache", "initializer_range", "fuse_norm", "fuse_swiglu", "fuse_cross_entropy",
    "fuse_linear_cross_entropy", "use_l2warp", "max_position_embeddings", "pad_token_id",
    "auto_map", "keys_to_ignore_at_inference",
    // DeltaNet's layer takes it but always applies its output norm.
    "use_output_norm"};

absl::StatusOr<Json> ParseObject(absl::string_view text, absl::string_view file) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(file, ": not valid JSON"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": must be a JSON object"));
  }
  return j;
}

// The widest projection a config may ask for (keeps every product in range).
constexpr int64_t kMaxWidth = int64_t{1} << 20;

// A field that must be absent or null: a feature the server does not run.
absl::Status MustBeNull(ObjectReader& r, absl::string_view key, absl::string_view what) {
  const Json* v = r.Find(key);
  if (v != nullptr && !v->is_null()) {
    return r.Error(key, absl::StrCat("is set: ", what, " is not supported by this server"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> BoolOr(ObjectReader& r, absl::string_view key, bool dflt) {
  if (r.Find(key) == nullptr) {
    r.Ignore(key);
    return dflt;
  }
  return r.Bool(key);
}

// A width given as hidden_size * ratio must come out whole, as fla requires.
absl::StatusOr<int32_t> Scaled(ObjectReader& r, absl::string_view key, int64_t base, double ratio) {
  const double x = static_cast<double>(base) * ratio;
  if (!(ratio > 0) || std::abs(x - std::round(x)) > 1e-6) {
    return r.Error(key, absl::StrCat("gives a non-integer width ", x));
  }
  if (x > static_cast<double>(kMaxWidth)) {
    return r.Error(key, absl::StrCat("gives a width ", x, " above ", kMaxWidth));
  }
  return static_cast<int32_t>(std::round(x));
}

absl::Status ParseShared(const Json& j, ObjectReader& r, ModelConfig& c) {
  for (const char* key : kInert) r.Ignore(key);
  // Keys Hugging Face adds for itself ("_name_or_path", "_attn_implementation...").
  for (const auto& [key, value] : j.items()) {
    if (!key.empty() && key[0] == '_') r.Ignore(key);
  }
  // Older fla configs carry norm_first (a norm before the first layer); false is
  // the model fla builds today.
  ASSIGN_OR_RETURN(bool norm_first, BoolOr(r, "norm_first", false));
  if (norm_first)
    return r.Error("norm_first", "is true: a norm before the first layer is not supported");
  RETURN_IF_ERROR(MustBeNull(r, "attn", "hybrid softmax-attention layers ('attn')"));
  RETURN_IF_ERROR(MustBeNull(r, "attnres_block_size", "attention residuals"));
  ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size", int64_t{32000}, 2));
  ASSIGN_OR_RETURN(c.d_model, r.Int("hidden_size", int64_t{2048}, 1));
  ASSIGN_OR_RETURN(double eps, r.Number("norm_eps", 1e-6));
  if (!(eps > 0.0)) return r.Error("norm_eps", "must be > 0");
  c.rms_eps = eps;
  ASSIGN_OR_RETURN(std::string act, r.Enum("hidden_act", {"swish", "silu"}, "swish"));
  (void)act;  // both name x * sigmoid(x)
  ASSIGN_OR_RETURN(bool tied, BoolOr(r, "tie_word_embeddings", false));
  c.tie_embeddings = tied;
  ASSIGN_OR_RETURN(c.bos_id, r.Int("bos_token_id", int64_t{1}, 0));
  ASSIGN_OR_RETURN(c.eos_id, r.Int("eos_token_id", int64_t{2}, 0));
  ASSIGN_OR_RETURN(bool gate, BoolOr(r, "use_gate", c.fla.use_gate));
  c.fla.use_gate = gate;
  ASSIGN_OR_RETURN(bool conv, BoolOr(r, "use_short_conv", true));
  ASSIGN_OR_RETURN(int64_t width, r.Int("conv_size", int64_t{4}, 1));
  c.fla.conv_size = conv ? static_cast<int32_t>(width) : 0;
  ASSIGN_OR_RETURN(bool neg, BoolOr(r, "allow_neg_eigval", false));
  c.fla.allow_neg_eigval = neg;

  // MLP width: intermediate_size, or fla's rule from hidden_ratio.
  const Json* inter = r.Find("intermediate_size");
  r.Ignore("hidden_ratio");  // read below when intermediate_size is null
  if (inter != nullptr && !inter->is_null()) {
    ASSIGN_OR_RETURN(c.d_ff, r.Int("intermediate_size", std::nullopt, 1));
  } else {
    const Json* ratio = r.Find("hidden_ratio");
    double hr = 4;
    if (ratio != nullptr && !ratio->is_null()) {
      if (!ratio->is_number() || !(ratio->get<double>() > 0)) {
        return r.Error("hidden_ratio", "must be a positive number");
      }
      hr = ratio->get<double>();
      if (hr > 64) return r.Error("hidden_ratio", "must be <= 64");
    }
    const int64_t raw = static_cast<int64_t>(static_cast<double>(c.d_model) * hr * 2.0 / 3.0);
    const int64_t width = 256 * ((raw + 255) / 256);
    if (width > kMaxWidth) return r.Error("hidden_ratio", "gives an MLP width above 2^20");
    c.d_ff = static_cast<int32_t>(width);
  }
  return absl::OkStatus();
}

absl::Status ParseDeltaNet(ObjectReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.n_heads, r.Int("num_heads", int64_t{16}, 1));
  ASSIGN_OR_RETURN(double ek, r.Number("expand_k", 1.0));
  ASSIGN_OR_RETURN(double ev, r.Number("expand_v", 1.0));
  ASSIGN_OR_RETURN(const int32_t key_dim, Scaled(r, "expand_k", c.d_model, ek));
  ASSIGN_OR_RETURN(const int32_t value_dim, Scaled(r, "expand_v", c.d_model, ev));
  if (key_dim % c.n_heads != 0) return r.Error("num_heads", "must divide the key width");
  if (value_dim % c.n_heads != 0) return r.Error("num_heads", "must divide the value width");
  c.head_dim = key_dim / c.n_heads;
  c.fla.num_v_heads = c.n_heads;
  c.fla.head_v_dim = value_dim / c.n_heads;
  ASSIGN_OR_RETURN(bool beta, BoolOr(r, "use_beta", true));
  c.fla.use_beta = beta;
  ASSIGN_OR_RETURN(std::string norm, r.Enum("qk_norm", {"l2", "sum"}, "l2"));
  c.fla.qk_norm = norm == "sum" ? QkNorm::kSum : QkNorm::kL2;
  ASSIGN_OR_RETURN(std::string act,
                   r.Enum("qk_activation", {"silu", "relu", "elu", "identity"}, "silu"));
  c.fla.qk_activation = act == "relu"       ? QkActivation::kRelu
                        : act == "elu"      ? QkActivation::kElu
                        : act == "identity" ? QkActivation::kIdentity
                                            : QkActivation::kSilu;
  ASSIGN_OR_RETURN(c.n_layers, r.Int("num_hidden_layers", int64_t{24}, 1));
  return absl::OkStatus();
}

absl::Status ParseGatedDeltaNet(ObjectReader& r, ModelConfig& c) {
  ASSIGN_OR_RETURN(c.n_heads, r.Int("num_heads", int64_t{6}, 1));
  ASSIGN_OR_RETURN(c.head_dim, r.Int("head_dim", int64_t{256}, 1));
  ASSIGN_OR_RETURN(double ev, r.Number("expand_v", 2.0));
  ASSIGN_OR_RETURN(c.fla.head_v_dim, Scaled(r, "expand_v", c.head_dim, ev));
  const Json* hv = r.Find("num_v_heads");
  c.fla.num_v_heads = c.n_heads;
  if (hv != nullptr && !hv->is_null()) {
    ASSIGN_OR_RETURN(c.fla.num_v_heads, r.Int("num_v_heads", std::nullopt, 1));
  }
  if (c.fla.num_v_heads < c.n_heads || c.fla.num_v_heads % c.n_heads != 0) {
    return r.Error("num_v_heads", absl::StrCat("must be a multiple of num_heads (", c.n_heads,
                                               "), got ", c.fla.num_v_heads));
  }
  c.scalar_decay = true;  // -exp(A_log) * softplus(a_proj x + dt_bias)
  ASSIGN_OR_RETURN(c.n_layers, r.Int("num_hidden_layers", int64_t{21}, 1));
  return absl::OkStatus();
}

}  // namespace

bool IsFlaModelType(absl::string_view t) { return t == "delta_net" || t == "gated_deltanet"; }

absl::StatusOr<std::string> PeekModelType(absl::string_view text) {
  ASSIGN_OR_RETURN(Json j, ParseObject(text, "config.json"));
  auto it = j.find("model_type");
  if (it == j.end() || !it->is_string()) return std::string();
  return it->get<std::string>();
}

absl::StatusOr<ModelConfig> ParseFlaConfig(absl::string_view text) {
  ASSIGN_OR_RETURN(Json j, ParseObject(text, "config.json"));
  ObjectReader r(j, "");
  ModelConfig c;
  ASSIGN_OR_RETURN(c.model_type, r.Enum("model_type", {"delta_net", "gated_deltanet"}));
  c.family = c.model_type == "delta_net" ? ModelFamily::kDeltaNet : ModelFamily::kGatedDeltaNet;
  c.fla.use_gate = c.family == ModelFamily::kGatedDeltaNet;  // fla's defaults
  c.rule = MemoryRule::kDelta;
  c.aggregation = Aggregation::kNone;
  c.segment_length = kFlaBlock;
  c.mc_source = "";  // no overlay: plain fla
  c.tokenizer = TokenizerKind::kSentencePiece;
  RETURN_IF_ERROR(ParseShared(j, r, c));
  if (c.family == ModelFamily::kDeltaNet) {
    RETURN_IF_ERROR(ParseDeltaNet(r, c));
  } else {
    RETURN_IF_ERROR(ParseGatedDeltaNet(r, c));
  }
  RETURN_IF_ERROR(r.NoUnknownKeys());
  // Every width in range before anything multiplies them in 32 bits.
  const struct {
    const char* field;
    int64_t width;
  } widths[] = {{"hidden_size", c.d_model},
                {"intermediate_size", c.d_ff},
                {"num_heads", int64_t{c.n_heads} * c.head_dim},
                {c.family == ModelFamily::kDeltaNet ? "expand_v" : "num_v_heads",
                 int64_t{c.fla.num_v_heads} * c.fla.head_v_dim}};
  for (const auto& w : widths) {
    if (w.width > kMaxWidth) {
      return r.Error(w.field, absl::StrCat("gives a width ", w.width, " above ", kMaxWidth));
    }
  }
  RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<std::optional<Router>> ApplyMcOverlay(absl::string_view text,
                                                     const std::string& source, ModelConfig& c) {
  ASSIGN_OR_RETURN(Json j, ParseObject(text, source));
  ObjectReader r(j, "", source);
  ASSIGN_OR_RETURN(std::string agg,
                   r.Enum("aggregation", {"none", "residual", "mean", "grm", "soup", "ssc"}));
  for (Aggregation a : {Aggregation::kNone, Aggregation::kResidual, Aggregation::kMean,
                        Aggregation::kGrm, Aggregation::kSoup, Aggregation::kSsc}) {
    if (AggregationName(a) == agg) c.aggregation = a;
  }
  const bool keeps = kernels::KeepsCheckpoints(c.aggregation);
  ASSIGN_OR_RETURN(
      c.segment_length,
      r.Int("segment_length", keeps ? std::nullopt : std::optional<int64_t>(kFlaBlock), 1));
  ASSIGN_OR_RETURN(int64_t k, r.Int("top_k", int64_t{0}, 0));
  if (c.aggregation == Aggregation::kSsc && k < 1) return r.Error("top_k", "must be >= 1 for ssc");
  c.top_k = c.aggregation == Aggregation::kSsc ? static_cast<int32_t>(k) : 0;
  ASSIGN_OR_RETURN(std::string boundary, r.Enum("boundary", {"continue", "reset"}, "continue"));
  c.boundary = boundary == "reset" ? Boundary::kReset : Boundary::kContinue;
  ASSIGN_OR_RETURN(c.gate_scale, r.Number("gate_scale", 1.0));
  std::optional<Router> router;
  if (r.Find("router") != nullptr) {
    ASSIGN_OR_RETURN(std::string name, r.Enum("router", {"u_proj", "query"}));
    router = name == "query" ? Router::kQuery : Router::kProj;
  }
  RETURN_IF_ERROR(r.NoUnknownKeys());
  if (c.HasGate() && c.fla.qk_norm == QkNorm::kSum) {
    return r.Error("aggregation", absl::StrCat("'", agg,
                                               "' routes by l2-normalised keys; this checkpoint "
                                               "uses qk_norm 'sum'"));
  }
  c.mc_source = source;
  RETURN_IF_ERROR(c.Validate());
  return router;
}

}  // namespace mcserve::model
