// The tensors that hold MC state, addressed by slot index, and the layout of
// a sequence's online state. The layout comes from the model family: a list
// of named per-layer tensors (the linear memory has its matrix S and the key
// sum of the open segment; a convolution cache or a deep memory's momentum
// would be further entries). The state store (server/state) allocates one
// pool per entry and owns every slot; the model only reads and writes the
// tensors in place, by the slot indices it is given.
#ifndef MCSERVE_SERVER_MODEL_CACHE_TENSORS_H_
#define MCSERVE_SERVER_MODEL_CACHE_TENSORS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "server/model/config.h"

namespace mcserve::model {

// One named tensor of a sequence's online state, per layer.
struct StateTensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // of one layer
  at::ScalarType dtype = at::kFloat;
  // A new sequence's value, [L, shape...] on the model's device; undefined:
  // zero. (A deep memory starts from its learned initial weights.)
  at::Tensor initial;
};
using StateLayout = std::vector<StateTensorSpec>;

// What a sequence's online state is at a segment boundary, compared with
// the checkpoint that boundary wrote. It decides what a prefix-cache entry
// must keep beside the checkpoint.
enum class BoundaryState {
  kCheckpoint,  // the memory equals the checkpoint; every other entry is zero
  kZero,        // every entry is zero (boundary = reset)
  kStored,      // neither: the state must be stored as it is
};

struct CacheTensors {
  // One pool per StateLayout entry, in layout order: [state_slots, L, shape...].
  std::vector<at::Tensor> online;
  // H = ModelConfig::state_heads(), R = ckpt_rows() (linear: dk = head_dim),
  // dk = head_dim, dv = value_dim().
  at::Tensor ckpt;          // [ckpt_slots, L, H, R, dv]  float32 or bfloat16
  at::Tensor ckpt_summary;  // [ckpt_slots, L, H, dk]      float32: mean key of the segment
};

at::ScalarType CkptScalarType(CkptDtype d);

// Writes a new sequence's state (each entry's `initial`, else zero) into
// slot `slot` of `online` (one pool per layout entry).
void ResetSlot(const StateLayout& layout, const std::vector<at::Tensor>& online, int64_t slot);

// Pools on `device`: one per layout entry, then the checkpoints. Initialised
// as new sequences (ResetSlot),
// or with `zero_online` false, online pools left uninitialised for an owner
// that writes every slot before use (the state store zeroes, copies or
// imports a slot when it hands it out): on the host, untouched pages then
// cost no memory, so a large model's pool for hundreds of sessions is only
// resident for the sessions that exist.
CacheTensors AllocateCache(const ModelConfig& c, const StateLayout& layout, int64_t state_slots,
                           int64_t ckpt_slots, CkptDtype dtype, const at::Device& device,
                           bool zero_online = true);

// Bytes of one sequence's online state (every layout entry, all layers).
int64_t StateBytes(const ModelConfig& c, const StateLayout& layout);
// Bytes of one checkpoint (state in `dtype` plus float32 summary, all layers).
int64_t CheckpointBytes(const ModelConfig& c, CkptDtype dtype);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_CACHE_TENSORS_H_
