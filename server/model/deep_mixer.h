// The MC mixer of a deep-memory layer (mc-model.md §9 with the aggregation
// of §5): the batched decode step and the prefill of a run of one session's
// tokens, both on LibTorch tensors (CPU or CUDA), reading and writing the
// layer's online state and checkpoints in place.
//
// Online state per sequence and layer (the model's StateLayout): the memory
// W [H, 2*hid, d] (packed, deep_memory.h), the key sum of the open segment
// [H, d], the momentum Sigma [H, 2*hid, d] (momentum only), and the open
// chunk's rows [b, H, 2d+3]: each token's k, v, theta and its decay and
// momentum logits (0 when unused), kept until the chunk's last token writes.
#ifndef MCSERVE_SERVER_MODEL_DEEP_MIXER_H_
#define MCSERVE_SERVER_MODEL_DEEP_MIXER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "server/model/config.h"
#include "server/model/mixer_inputs.h"
#include "server/model/weights.h"

namespace mcserve::model {

// One layer's pools: views [slots, ...] of the state store's tensors.
struct DeepPools {
  at::Tensor memory;        // [S, H, 2*hid, d] float32
  at::Tensor key_sum;       // [S, H, d] float32
  at::Tensor momentum;      // [S, H, 2*hid, d] float32; undefined without momentum
  at::Tensor rows;          // [S, b, H, 2d+3] float32
  at::Tensor ckpt;          // [C, H, 2*hid, d] in the checkpoint dtype
  at::Tensor ckpt_summary;  // [C, H, d] float32
};

// Width of a token's row in the open chunk.
inline int64_t DeepRowWidth(const ModelConfig& c) { return 2 * int64_t{c.head_dim} + 3; }

// A decode step's sessions, on the model's device (built once per step).
struct DeepDecodeIndex {
  int64_t batch = 0, max_n = 0;
  at::Tensor slots;         // [B] long: state slots
  at::Tensor row_in_chunk;  // [B] long: position % b
  at::Tensor seg_count;     // [B, 1, 1] float: tokens of the open segment, this one included
  at::Tensor ckpt_slots;    // [B * max_n] long (padding: 0)
  at::Tensor ckpt_valid;    // [B, max_n] bool
  at::Tensor chunk_rows;    // long: batch rows whose token closes its chunk (maybe empty)
  at::Tensor seg_rows;      // long: batch rows whose token closes its segment
  at::Tensor kept_rows;     // long: those of them whose checkpoint is kept
  at::Tensor kept_dst;      // long: the kept checkpoints' slots
};

struct DeepDecodeSeq {
  int64_t position = 0;
  int32_t state_slot = 0;
  std::vector<int32_t> ckpt_slots;
  int32_t new_ckpt_slot = -1;
};
DeepDecodeIndex IndexDeepDecode(const ModelConfig& c, const std::vector<DeepDecodeSeq>& batch,
                                const at::Device& device);

// One token per session: returns the aggregated reads o [B, H, d] and sets
// *ckpt_weights [B, max_n] to each checkpoint's gate weight (mean over heads).
at::Tensor DeepDecodeLayer(const ModelConfig& c, const LayerWeights& lw, const DeepPools& p,
                           const DeepDecodeIndex& ix, const MixerInputs& m,
                           at::Tensor* ckpt_weights);

// A run of one session's tokens inside one segment, starting at `position`,
// reading the checkpoints `ckpt_slots` ([n] long, oldest first). When the run
// closes the segment, its checkpoint goes to `new_ckpt_slot` (if >= 0).
// Returns o [T, H, d].
at::Tensor DeepPrefillLayer(const ModelConfig& c, const LayerWeights& lw, const DeepPools& p,
                            int32_t state_slot, int64_t position, const at::Tensor& ckpt_slots,
                            int32_t new_ckpt_slot, const MixerInputs& m);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_DEEP_MIXER_H_
