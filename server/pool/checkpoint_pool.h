// The checkpoint pool: every MC checkpoint the server holds, in one of two
// tiers of fixed-size slots preallocated at start.
//
//   device tier  [device_slots, L, H, d, d] states + [device_slots, L, H, d]
//                summaries on the model's device; the model reads these by
//                slot index (the layout of the decode kernels' ckpt table).
//   host tier    the same shapes in host memory (pinned when the device is
//                CUDA), where checkpoints wait while they are not needed.
//
// A checkpoint is named by a CkptId that stays valid while it moves between
// tiers; sessions hold CkptIds, reference counted (a forked session shares
// its parent's checkpoints: they are immutable once written). Moves copy
// bytes exactly, so offloading never changes what the model computes.
//
// Pins: a checkpoint pinned in the current epoch (BeginEpoch/Pin) must stay
// on the device; eviction (eviction.h) never moves or drops it.
//
// Thread-compatible: the engine thread only.
#ifndef MCSERVE_SERVER_POOL_CHECKPOINT_POOL_H_
#define MCSERVE_SERVER_POOL_CHECKPOINT_POOL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "server/model/config.h"
#include "server/pool/slot_allocator.h"

namespace mcserve::pool {

using CkptId = int32_t;

enum class Tier { kDevice, kHost };

struct PoolOptions {
  int32_t device_slots = 0;
  int32_t host_slots = 0;
  at::ScalarType dtype = at::kFloat;  // checkpoint states; summaries are float32
  at::Device device = at::kCPU;
};

// Totals since start, for logs and metrics.
struct PoolCounters {
  int64_t offloads = 0;  // device -> host
  int64_t fetches = 0;   // host -> device
  int64_t drops = 0;     // lossy: a checkpoint removed from a session
  int64_t merges = 0;    // lossy: two adjacent checkpoints became one
};

class CheckpointPool {
 public:
  CheckpointPool() = default;  // no slots
  CheckpointPool(const model::ModelConfig& config, const PoolOptions& options);

  // A new checkpoint with one reference in a free device slot, or nullopt
  // when the device tier is full. Its contents are written by the caller
  // (the model) through device_slot().
  std::optional<CkptId> Create();
  // A new checkpoint holding a copy of `state` [L, H, d, d] and `summary`
  // [L, H, d], placed on the device if a slot is free, else on the host; or
  // nullopt when both tiers are full.
  std::optional<CkptId> CreateFrom(const at::Tensor& state, const at::Tensor& summary);
  // Reference counts are checked in every build: an id that is not alive is
  // an INTERNAL error and nothing changes.
  absl::Status Ref(CkptId id);
  // Drops one reference; at zero the checkpoint's slot is free again.
  absl::Status Unref(CkptId id);
  bool alive(CkptId id) const {
    return id >= 0 && id < static_cast<CkptId>(entries_.size()) && entries_[id].refs > 0;
  }

  // Device -> host. False (nothing moved) when the host tier is full.
  bool Offload(CkptId id);
  // Host -> device. False (nothing moved) when the device tier is full.
  bool Fetch(CkptId id);
  // `keep` becomes the mean of `keep` and `gone` (states and summaries) in
  // keep's tier; `gone` loses the caller's reference.
  void Merge(CkptId keep, CkptId gone);

  // Gate weight the checkpoint received in a decode step: kept as an
  // exponential running average (usefulness() ranks eviction victims).
  void Observe(CkptId id, float weight);
  float usefulness(CkptId id) const { return entries_[id].usefulness; }

  void BeginEpoch() { ++epoch_; }
  void Pin(CkptId id) { entries_[id].pin_epoch = epoch_; }
  bool pinned(CkptId id) const { return entries_[id].pin_epoch == epoch_; }

  Tier tier(CkptId id) const;
  int32_t device_slot(CkptId id) const { return entries_[id].device_slot; }
  int32_t refs(CkptId id) const { return entries_[id].refs; }
  // Views of a checkpoint's state [L, H, d, d] and summary [L, H, d] in
  // whichever tier holds it.
  at::Tensor state(CkptId id) const;
  at::Tensor summary(CkptId id) const;

  // The device tier, for the model: states [slots, L, H, d, d], summaries
  // [slots, L, H, d].
  const at::Tensor& device_states() const { return device_state_; }
  const at::Tensor& device_summaries() const { return device_summary_; }

  int32_t device_capacity() const { return device_slots_.capacity(); }
  int32_t host_capacity() const { return host_slots_.capacity(); }
  int32_t device_used() const { return device_slots_.used(); }
  int32_t host_used() const { return host_slots_.used(); }
  bool device_full() const { return device_used() == device_capacity(); }
  bool host_full() const { return host_used() == host_capacity(); }
  // Checkpoints alive (any tier) and the sum of their reference counts.
  int32_t live() const { return static_cast<int32_t>(entries_.size() - free_ids_.size()); }
  int64_t total_refs() const { return total_refs_; }
  const PoolCounters& counters() const { return counters_; }
  void CountDrop() { ++counters_.drops; }

 private:
  struct Entry {
    int32_t device_slot = -1;
    int32_t host_slot = -1;
    int32_t refs = 0;
    float usefulness = 0;
    bool observed = false;
    uint64_t pin_epoch = 0;
  };
  CkptId NewEntry();

  std::vector<Entry> entries_;
  std::vector<CkptId> free_ids_;
  SlotAllocator device_slots_;
  SlotAllocator host_slots_;
  at::Tensor device_state_, device_summary_;
  at::Tensor host_state_, host_summary_;
  uint64_t epoch_ = 1;
  int64_t total_refs_ = 0;
  PoolCounters counters_;
};

}  // namespace mcserve::pool

#endif  // MCSERVE_SERVER_POOL_CHECKPOINT_POOL_H_
