// The MC language model (mc-model.md): a batched decode step over many
// sessions and a chunked-parallel prefill of one session, both reading and
// writing MC state in pools owned by the state store (CacheTensors), by slot
// index. The model says what a sequence's state is made of (state_layout)
// and what it is at a segment boundary (boundary_state).
//
// Thread-compatibility: a McModel is used by one thread at a time (the
// engine thread). Const accessors are thread-safe.
#ifndef MCSERVE_SERVER_MODEL_MC_MODEL_H_
#define MCSERVE_SERVER_MODEL_MC_MODEL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/model/cache_tensors.h"
#include "server/model/config.h"
#include "server/model/deep_mixer.h"
#include "server/model/weights.h"
#include "server/util/fault_injector.h"

namespace mcserve::model {

struct ModelOptions {
  at::Device device = at::kCPU;
  CkptDtype ckpt_dtype = CkptDtype::kFloat32;
  // Longest piece the parallel prefill processes at once. Where a segment is
  // shorter, pieces span segments (span_mixer.h) and start and end on a grid
  // of absolute positions, whole segments of at most prefill_piece tokens
  // (prefill_grid()), so that two prefills of the same tokens from grid
  // points compute alike; otherwise pieces stop at segment boundaries.
  int32_t prefill_piece = 256;
  // fla checkpoints: the MC overlay file; "" for `dir`/mc_config.json if
  // present, else aggregation none.
  std::string mc_config;
  // Test hook: sites "model.prefill" (tag: PrefillSeq::tag) and
  // "model.decode" (tag: "") fail as LibTorch would. Null: none.
  FaultInjector* faults = nullptr;
};

// One session's token in a decode step.
struct DecodeSeq {
  int32_t token = 0;
  int64_t position = 0;  // tokens the session fed before this one
  int32_t state_slot = 0;
  absl::Span<const int32_t> ckpt_slots;  // checkpoints this token reads, oldest first
  // Slot for the checkpoint this token closes; required (>= 0) exactly when
  // the token closes a segment and the aggregation keeps checkpoints.
  int32_t new_ckpt_slot = -1;
};

struct DecodeResult {
  at::Tensor logits;        // [B, V] float32 on CPU
  at::Tensor ckpt_weights;  // [B, max_n] float32 on CPU: mean gate weight per checkpoint
};

// A run of tokens of one session for prefill.
struct PrefillSeq {
  absl::Span<const int32_t> tokens;
  int64_t position = 0;  // tokens the session fed before these
  int32_t state_slot = 0;
  absl::Span<const int32_t> ckpt_slots;      // checkpoints held before these tokens
  absl::Span<const int32_t> new_ckpt_slots;  // one per segment these tokens close
  bool want_logits = false;
  absl::string_view tag;  // who the tokens belong to, for fault injection
};

class McModel {
 public:
  // Loads `dir`/config.json and its weights (model.safetensors, or a sharded
  // model.safetensors.index.json). An fla checkpoint (model_type delta_net
  // or gated_deltanet) also takes its MC settings from options.mc_config, or
  // else `dir`/mc_config.json when present (fla_config.h), and its tokenizer
  // from `dir`/tokenizer.model. Errors name the file and the field or tensor
  // at fault.
  static absl::StatusOr<std::unique_ptr<McModel>> Load(const std::string& dir,
                                                       const ModelOptions& options);

  const ModelConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  const Weights& weights() const { return weights_; }
  const kernels::McLayerParams& layer_params() const { return params_; }

  // Number of checkpoints written by feeding `count` tokens from `position`.
  int64_t CheckpointsClosed(int64_t position, int64_t count) const;

  // A sequence's online state, per layer: kMemory [H, dk, dv] float32 (S,
  // one per value head; a deep memory's packed W [H, 2*E*d, d]), kKeySum
  // [H, dk] float32 (keys of the open segment), and for fla models with
  // short convolutions kConv [C, W] float32 (the last W inputs of the q, k
  // and v convolutions); deep memories add "momentum" (with momentum) and
  // "chunk_rows" (deep_mixer.h).
  static constexpr int kMemory = 0;
  static constexpr int kKeySum = 1;
  static constexpr int kConv = 2;
  const StateLayout& state_layout() const { return layout_; }
  BoundaryState boundary_state() const;
  int64_t state_bytes() const { return StateBytes(config_, layout_); }
  int64_t checkpoint_bytes() const { return CheckpointBytes(config_, options_.ckpt_dtype); }

  // Zeroed pools in the model's layout (for tests and benchmarks; the server
  // gets its pools from the state store).
  CacheTensors AllocateCache(int64_t state_slots, int64_t ckpt_slots) const;

  // Feeds one token per session and returns next-token logits. Sessions must
  // have distinct state slots.
  absl::StatusOr<DecodeResult> Decode(const CacheTensors& cache, absl::Span<const DecodeSeq> batch);

  // True when prefill pieces may cross segment boundaries: a linear memory
  // whose boundary state is a checkpoint or zero (so a prefix cache need not
  // stop at every boundary), with segments shorter than prefill_piece.
  bool spans_segments() const {
    return !config_.is_deep() && boundary_state() != BoundaryState::kStored &&
           config_.segment_length < options_.prefill_piece;
  }
  // Positions prefill pieces start and end on (besides a prompt's own ends):
  // multiples of this many tokens, a multiple of the segment length.
  int64_t prefill_grid() const {
    const int64_t c = config_.segment_length;
    return spans_segments() ? options_.prefill_piece / c * c : c;
  }

  // Feeds seq.tokens in parallel pieces; returns [T, V] logits if asked,
  // else an undefined tensor.
  absl::StatusOr<at::Tensor> Prefill(const CacheTensors& cache, const PrefillSeq& seq);

 private:
  McModel(ModelConfig config, Weights weights, ModelOptions options);

  at::Tensor Logits(const at::Tensor& x) const;
  at::Tensor MixerOut(const LayerWeights& lw, const at::Tensor& o, const at::Tensor& g) const;
  bool has_conv() const { return config_.is_fla() && config_.fla.conv_size > 0; }
  absl::Status CheckDecode(const CacheTensors& cache, absl::Span<const DecodeSeq> batch) const;
  absl::Status CheckPrefill(const CacheTensors& cache, const PrefillSeq& seq) const;
  absl::StatusOr<at::Tensor> DecodeImpl(const CacheTensors& cache,
                                        absl::Span<const DecodeSeq> batch,
                                        at::Tensor* ckpt_weights);
  DeepPools DeepLayerPools(const CacheTensors& cache, int64_t l) const;
  absl::StatusOr<at::Tensor> DeepDecodeImpl(const CacheTensors& cache,
                                            absl::Span<const DecodeSeq> batch,
                                            at::Tensor* ckpt_weights);
  // Tokens [begin, end) of seq; `new_slots`: one per checkpoint they close.
  at::Tensor PrefillPiece(const CacheTensors& cache, const PrefillSeq& seq, int64_t begin,
                          int64_t end, int64_t n_ckpt, absl::Span<const int32_t> new_slots);

  ModelConfig config_;
  Weights weights_;
  ModelOptions options_;
  kernels::McLayerParams params_;
  StateLayout layout_;
  int deep_momentum_ = -1;  // layout entries of a deep memory (-1: none)
  int deep_rows_ = -1;
};

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_MC_MODEL_H_
