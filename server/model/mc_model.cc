#include "server/model/mc_model.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/model/checkpoint_files.h"
#include "server/model/fla_config.h"
#include "server/model/fla_mixer.h"
#include "server/model/fla_weights.h"
#include "server/model/ops.h"
#include "server/model/safetensors.h"
#include "server/util/status_macros.h"
#include "server/util/text_file.h"

namespace mcserve::model {

namespace {

// The error with `path` in front (instead of the bare file name parsers use).
absl::Status InFile(const std::string& path, const absl::Status& s) {
  absl::string_view msg = s.message();
  absl::ConsumePrefix(&msg, absl::StrCat(std::filesystem::path(path).filename().string(), ": "));
  return absl::Status(s.code(), absl::StrCat(path, ": ", msg));
}

// An fla config with its MC overlay, router and tokenizer settled.
absl::StatusOr<ModelConfig> LoadFlaConfig(const std::string& dir, const std::string& text,
                                          const ModelOptions& options,
                                          const CheckpointFiles& files) {
  const std::string config_path = dir + "/config.json";
  absl::StatusOr<ModelConfig> parsed = ParseFlaConfig(text);
  if (!parsed.ok()) return InFile(config_path, parsed.status());
  ModelConfig c = *std::move(parsed);
  std::string overlay = options.mc_config;
  std::error_code ec;
  if (overlay.empty() && std::filesystem::exists(dir + "/mc_config.json", ec)) {
    overlay = dir + "/mc_config.json";
  }
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, "/mc_config.json: ", ec.message()));
  std::optional<Router> router;
  if (!overlay.empty()) {
    ASSIGN_OR_RETURN(const std::string overlay_text, ReadTextFile(overlay));
    ASSIGN_OR_RETURN(router, ApplyMcOverlay(overlay_text, overlay, c));
  }
  const bool has_router = files.tensors().count(FlaRouterName(0)) > 0;
  if (router == Router::kProj && !has_router) {
    return absl::InvalidArgumentError(absl::StrCat(
        overlay, ": field 'router' is 'u_proj' but the checkpoint has no ", FlaRouterName(0)));
  }
  c.router = router.value_or(has_router ? Router::kProj : Router::kQuery);
  c.tokenizer = TokenizerKind::kSentencePiece;
  c.tokenizer_path = dir + "/tokenizer.model";
  return c;
}

}  // namespace

absl::StatusOr<std::unique_ptr<McModel>> McModel::Load(const std::string& dir,
                                                       const ModelOptions& options) {
  if (options.prefill_piece < 1) return absl::InvalidArgumentError("prefill_piece must be >= 1");
  const std::string config_path = dir + "/config.json";
  ASSIGN_OR_RETURN(const std::string text, ReadTextFile(config_path));
  absl::StatusOr<std::string> type = PeekModelType(text);
  if (!type.ok()) return InFile(config_path, type.status());
  const bool fla = IsFlaModelType(*type);
  if (!fla && !options.mc_config.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("an MC overlay (", options.mc_config,
                                                   ") applies to fla checkpoints only; ",
                                                   config_path, " has model_type '", *type, "'"));
  }
  std::optional<ModelConfig> config;
  if (!fla) {
    ASSIGN_OR_RETURN(config, ModelConfig::Load(config_path));
  }
  ASSIGN_OR_RETURN(CheckpointFiles files, CheckpointFiles::Open(dir));
  if (fla) {
    ASSIGN_OR_RETURN(config, LoadFlaConfig(dir, text, options, files));
  }
  absl::StatusOr<Weights> weights =
      LoadWeights(*config, files.tensors(), options.device,
                  files.sharded() ? std::function<std::string(const std::string&)>(
                                        [&files](const std::string& n) { return files.FileOf(n); })
                                  : nullptr);
  if (!weights.ok()) {
    return absl::Status(weights.status().code(), absl::StrCat(dir, "/", files.description(), ": ",
                                                              weights.status().message()));
  }
  return std::unique_ptr<McModel>(new McModel(*std::move(config), *std::move(weights), options));
}

McModel::McModel(ModelConfig config, Weights weights, ModelOptions options)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      options_(options),
      params_(config_.LayerParams(options.ckpt_dtype)) {
  const int64_t H = config_.state_heads(), dk = config_.head_dim, dv = config_.value_dim();
  const int64_t rows = config_.ckpt_rows();
  layout_ = {{"memory", {H, rows, dv}, at::kFloat, {}}, {"key_sum", {H, dk}, at::kFloat, {}}};
  if (has_conv()) {
    layout_.push_back({"conv", {FlaConvChannels(config_), config_.fla.conv_size}, at::kFloat, {}});
  }
  if (config_.is_deep()) {
    // The memory starts from its learned initial weights; the momentum (if
    // any) and the open chunk's rows from zero.
    std::vector<at::Tensor> init;
    for (const LayerWeights& lw : weights_.layers) init.push_back(lw.mem_init);
    layout_[kMemory].initial = at::stack(init);
    if (config_.deep.momentum) {
      deep_momentum_ = static_cast<int>(layout_.size());
      layout_.push_back({"momentum", {H, rows, dv}, at::kFloat, {}});
    }
    deep_rows_ = static_cast<int>(layout_.size());
    layout_.push_back(
        {"chunk_rows", {config_.deep.chunk, H, DeepRowWidth(config_)}, at::kFloat, {}});
  }
}

DeepPools McModel::DeepLayerPools(const CacheTensors& cache, int64_t l) const {
  DeepPools p;
  p.memory = cache.online[kMemory].select(1, l);
  p.key_sum = cache.online[kKeySum].select(1, l);
  if (deep_momentum_ >= 0) p.momentum = cache.online[deep_momentum_].select(1, l);
  p.rows = cache.online[deep_rows_].select(1, l);
  p.ckpt = cache.ckpt.select(1, l);
  p.ckpt_summary = cache.ckpt_summary.select(1, l);
  return p;
}

BoundaryState McModel::boundary_state() const {
  // Convolution caches hold the last inputs, never zero at a boundary.
  if (has_conv()) return BoundaryState::kStored;
  // A deep memory restarts from its initial weights, not zero, and its
  // momentum carries across boundaries.
  if (config_.is_deep()) return BoundaryState::kStored;
  if (config_.boundary == Boundary::kReset) return BoundaryState::kZero;
  // The key sum restarts at every boundary; the memory carries on and is
  // what the checkpoint froze, exactly when that is kept in float32.
  if (kernels::KeepsCheckpoints(config_.aggregation) &&
      options_.ckpt_dtype == CkptDtype::kFloat32) {
    return BoundaryState::kCheckpoint;
  }
  return BoundaryState::kStored;
}

int64_t McModel::CheckpointsClosed(int64_t position, int64_t count) const {
  if (!kernels::KeepsCheckpoints(config_.aggregation)) return 0;
  const int64_t c = config_.segment_length;
  return (position + count) / c - position / c;
}

CacheTensors McModel::AllocateCache(int64_t state_slots, int64_t ckpt_slots) const {
  return model::AllocateCache(config_, layout_, state_slots, ckpt_slots, options_.ckpt_dtype,
                              options_.device);
}

at::Tensor McModel::Logits(const at::Tensor& x) const {
  return at::linear(RmsNorm(x, weights_.norm, config_.rms_eps), weights_.lm_head)
      .to(at::kCPU, at::kFloat)
      .contiguous();
}

// o: [N, H, d] aggregated reads; g: [N, H*d] gate pre-activations.
at::Tensor McModel::MixerOut(const LayerWeights& lw, const at::Tensor& o,
                             const at::Tensor& g) const {
  if (config_.is_fla()) return FlaMixerOut(config_, lw, o, g);
  const at::Tensor normed = RmsNorm(o, lw.o_norm, config_.rms_eps).reshape({o.size(0), -1});
  return at::linear(normed * at::silu(g), lw.o_proj);
}

absl::Status McModel::CheckDecode(const CacheTensors& cache,
                                  absl::Span<const DecodeSeq> batch) const {
  const int64_t n_state = cache.online[kMemory].size(0), n_ckpt = cache.ckpt.size(0);
  std::set<int32_t> seen;
  for (const DecodeSeq& s : batch) {
    if (s.token < 0 || s.token >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token ", s.token, " out of vocabulary"));
    }
    if (s.state_slot < 0 || s.state_slot >= n_state || !seen.insert(s.state_slot).second) {
      return absl::InternalError(absl::StrCat("bad or repeated state slot ", s.state_slot));
    }
    for (int32_t c : s.ckpt_slots) {
      if (c < 0 || c >= n_ckpt) return absl::InternalError(absl::StrCat("bad checkpoint slot ", c));
    }
    const bool needs = CheckpointsClosed(s.position, 1) == 1;
    if (needs != (s.new_ckpt_slot >= 0) || s.new_ckpt_slot >= n_ckpt) {
      return absl::InternalError(absl::StrCat("checkpoint slot ", s.new_ckpt_slot,
                                              " does not match position ", s.position));
    }
  }
  return absl::OkStatus();
}

absl::Status McModel::CheckPrefill(const CacheTensors& cache, const PrefillSeq& seq) const {
  const int64_t n_ckpt = cache.ckpt.size(0);
  if (seq.state_slot < 0 || seq.state_slot >= cache.online[kMemory].size(0)) {
    return absl::InternalError(absl::StrCat("bad state slot ", seq.state_slot));
  }
  for (int32_t t : seq.tokens) {
    if (t < 0 || t >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token ", t, " out of vocabulary"));
    }
  }
  const int64_t closes = CheckpointsClosed(seq.position, static_cast<int64_t>(seq.tokens.size()));
  if (static_cast<int64_t>(seq.new_ckpt_slots.size()) != closes) {
    return absl::InternalError(absl::StrCat("prefill closes ", closes, " segments but got ",
                                            seq.new_ckpt_slots.size(), " checkpoint slots"));
  }
  for (absl::Span<const int32_t> list : {seq.ckpt_slots, seq.new_ckpt_slots}) {
    for (int32_t c : list) {
      if (c < 0 || c >= n_ckpt) return absl::InternalError(absl::StrCat("bad checkpoint slot ", c));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DecodeResult> McModel::Decode(const CacheTensors& cache,
                                             absl::Span<const DecodeSeq> batch) {
  RETURN_IF_ERROR(CheckDecode(cache, batch));
  DecodeResult r;
  if (batch.empty()) return r;
  try {
    if (options_.faults != nullptr) options_.faults->MaybeFail("model.decode", "");
    ASSIGN_OR_RETURN(r.logits, DecodeImpl(cache, batch, &r.ckpt_weights));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("decode step failed: ", e.what()));
  }
  return r;
}

absl::StatusOr<at::Tensor> McModel::Prefill(const CacheTensors& cache, const PrefillSeq& seq) {
  RETURN_IF_ERROR(CheckPrefill(cache, seq));
  const int64_t total = static_cast<int64_t>(seq.tokens.size());
  const int64_t c = config_.segment_length;
  std::vector<at::Tensor> logits;
  int64_t n_ckpt = static_cast<int64_t>(seq.ckpt_slots.size());
  size_t next_new = 0;
  try {
    if (options_.faults != nullptr) options_.faults->MaybeFail("model.prefill", seq.tag);
    const bool keeps = kernels::KeepsCheckpoints(config_.aggregation);
    const int64_t grid = prefill_grid();
    for (int64_t begin = 0; begin < total;) {
      const int64_t pos = seq.position + begin;
      // Spanning pieces end on the grid of absolute positions; the others at
      // the segment's end or after prefill_piece tokens.
      const int64_t end =
          spans_segments()
              ? std::min(total, (pos / grid + 1) * grid - seq.position)
              : std::min({total, begin + options_.prefill_piece, (pos / c + 1) * c - seq.position});
      const int64_t stored = keeps ? CheckpointsClosed(pos, end - begin) : 0;
      at::Tensor l = PrefillPiece(cache, seq, begin, end, n_ckpt,
                                  seq.new_ckpt_slots.subspan(next_new, stored));
      if (seq.want_logits) logits.push_back(l);
      n_ckpt += stored;
      next_new += stored;
      begin = end;
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("prefill failed: ", e.what()));
  }
  if (!seq.want_logits) return at::Tensor();
  if (logits.empty()) return at::empty({0, config_.vocab_size});
  return at::cat(logits, 0);
}

}  // namespace mcserve::model
