// The state store: the sole owner of per-sequence model state. It holds the
// online-state pools (one per entry of the model's StateLayout), the
// checkpoint pool's two tiers, every reference count, and the prefix cache;
// the model gets its view of the tensors from tensors(), and no other
// component edits them.
//
// A sequence (a session, or a one-shot request) holds its state through a
// SeqState handle: move-only, and destroying it releases everything the
// sequence held. Before the model runs a sequence's tokens, Reserve() makes
// its state its own (a fork shares its parent's slot until one writes),
// brings every checkpoint it reads onto the device and pinned, and takes
// device slots for the checkpoints the tokens will close (evicting as
// pool/eviction.h says); Commit() then appends those checkpoints, and a
// Reservation dropped without Commit() gives them back.
//
// Prefix cache (on when StoreOptions::prefix_cache_bytes > 0): the state at
// every segment boundary a sequence reaches is Publish()ed under the hash
// chain of its tokens since BOS; Lookup() finds the longest cached chain
// that starts a new sequence's tokens and Adopt() starts a sequence there.
// Where the boundary state is the last checkpoint (model BoundaryState
// kCheckpoint) or zero (kZero) an entry holds only a reference to the
// block's checkpoint; otherwise (kStored) also a copy of the online state.
// Entries are charged to the budget (checkpoint bytes, plus state bytes
// when stored), released least recently used first, and released before
// any session's checkpoint is offloaded.
//
// Failures are statuses: a LibTorch exception inside the store becomes one,
// and the state it was working on is left as it was.
// Thread-compatible: the engine thread only.
#ifndef MCSERVE_SERVER_STATE_STATE_STORE_H_
#define MCSERVE_SERVER_STATE_STATE_STORE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/model/cache_tensors.h"
#include "server/model/mc_model.h"
#include "server/pool/checkpoint_pool.h"
#include "server/pool/eviction.h"
#include "server/pool/slot_allocator.h"
#include "server/state/prefix_index.h"
#include "server/util/fault_injector.h"

namespace mcserve::state {

struct StoreOptions {
  int32_t max_sequences = 0;  // sequences alive at once (sessions + one-shot requests)
  int64_t checkpoint_pool_bytes = 256ll << 20;  // device tier
  int64_t host_pool_bytes = 0;                  // host tier
  pool::LossyPolicy lossy_eviction = pool::LossyPolicy::kNone;
  int64_t prefix_cache_bytes = 0;   // 0: no prefix cache
  FaultInjector* faults = nullptr;  // site "state.allocate"; null: none
};

class StateStore;

// A sequence's state in the store. Move-only; destroying it frees the state.
class SeqState {
 public:
  SeqState() = default;
  SeqState(SeqState&& other) noexcept { *this = std::move(other); }
  SeqState& operator=(SeqState&& other) noexcept;
  SeqState(const SeqState&) = delete;
  SeqState& operator=(const SeqState&) = delete;
  ~SeqState() { Release(); }

  bool valid() const { return store_ != nullptr; }
  void Release();

 private:
  friend class StateStore;
  SeqState(StateStore* store, int32_t id) : store_(store), id_(id) {}
  StateStore* store_ = nullptr;
  int32_t id_ = -1;
};

// The slots one step of a sequence may use (Reserve), and the checkpoints
// it will close. Move-only; dropped without Commit, the new checkpoints are
// given back.
class Reservation {
 public:
  Reservation() = default;
  Reservation(Reservation&& other) noexcept { *this = std::move(other); }
  Reservation& operator=(Reservation&& other) noexcept;
  ~Reservation();

  int32_t state_slot() const { return state_slot_; }
  // Device slots of the checkpoints the sequence reads, oldest first.
  const std::vector<int32_t>& ckpt_slots() const { return ckpt_slots_; }
  // Device slots for the checkpoints the step closes, in order.
  const std::vector<int32_t>& new_ckpt_slots() const { return new_slots_; }

 private:
  friend class StateStore;
  StateStore* store_ = nullptr;
  int32_t state_slot_ = -1;
  std::vector<int32_t> ckpt_slots_, new_slots_;
  std::vector<pool::CkptId> fresh_;
};

// A sequence's state as plain CPU tensors (snapshots).
struct StateImage {
  std::vector<at::Tensor> online;  // StateLayout order, each [L, shape...]
  std::vector<at::Tensor> ckpt_states;
  std::vector<at::Tensor> ckpt_summary;
  std::vector<float> usefulness;
  pool::EvictionStats eviction;
};

struct SeqInfo {
  int32_t checkpoints = 0;
  int32_t on_device = 0;
  int32_t on_host = 0;
  pool::EvictionStats eviction;
};

// A cached prefix that starts some tokens (Lookup).
struct PrefixMatch {
  int64_t tokens = 0;           // matched tokens (whole blocks); 0: none
  std::vector<uint64_t> chain;  // entry keys, oldest first (the last names the match)
};

struct PrefixStats {
  int32_t entries_device = 0, entries_host = 0;  // by the tier of their checkpoint
  int32_t entries_state_only = 0;                // no checkpoint (aggregation none)
  int64_t bytes_device = 0, bytes_host = 0;
  int64_t budget_bytes = 0;
  int64_t query_tokens = 0, hit_tokens = 0;  // totals since start
};

struct StoreStatus {
  int32_t checkpoint_slots_used = 0, checkpoint_slots_total = 0;  // device tier
  int32_t host_checkpoint_slots_used = 0, host_checkpoint_slots_total = 0;
  int32_t checkpoints = 0;      // alive, either tier
  int64_t checkpoint_refs = 0;  // references to them (sequences and the prefix cache)
  int32_t state_slots_used = 0, state_slots_total = 0;
  pool::PoolCounters evictions;
  PrefixStats prefix;
};

class StateStore : private pool::Reclaimer {
 public:
  // Allocates every pool for `model`'s layout. RESOURCE_EXHAUSTED when the
  // memory is not there; INVALID_ARGUMENT for sizes that cannot work.
  static absl::StatusOr<std::unique_ptr<StateStore>> Create(const model::McModel& model,
                                                            const StoreOptions& options);
  ~StateStore() override;
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // The tensors the model reads and writes.
  const model::CacheTensors& tensors() const { return cache_; }

  // A new state (the model's initial one: zero, or a deep memory's initial weights) with no
  // checkpoints. `owner` names the sequence in messages and logs.
  absl::StatusOr<SeqState> Create(absl::string_view owner);
  // A state continuing from `parent`: it shares the parent's checkpoints
  // and online state until one of them writes (copy on write).
  absl::StatusOr<SeqState> Fork(const SeqState& parent, absl::string_view owner);

  // Call once before the Reserve calls of a step: pins last until the next.
  void BeginStep() { pool_.BeginEpoch(); }
  // Readies `s` for a step that closes `new_ckpts` checkpoints (see above).
  absl::StatusOr<Reservation> Reserve(SeqState& s, int64_t new_ckpts);
  // The step ran: its checkpoints join `s`'s, oldest last.
  void Commit(SeqState& s, Reservation r);
  // Gate weights the step gave `s`'s checkpoints (eviction ranks by them).
  void Observe(const SeqState& s, absl::Span<const float> weights);
  // For eviction order: whether a request runs on `s`, and when it was used.
  void SetRunning(const SeqState& s, bool running, absl::Time now);

  int32_t num_checkpoints(const SeqState& s) const;
  bool lossy(const SeqState& s) const;
  SeqInfo Describe(const SeqState& s) const;

  StateImage Export(const SeqState& s) const;
  // A state from an image, or nothing: INVALID_ARGUMENT when it does not
  // fit the layout, RESOURCE_EXHAUSTED when the tiers cannot hold it.
  absl::StatusOr<SeqState> Import(const StateImage& image, absl::string_view owner);

  // Prefix cache (state_prefix.cc). Publish is a no-op when the cache is off.
  bool prefix_cache_enabled() const { return options_.prefix_cache_bytes > 0; }
  // True when a sequence must stop at every block boundary to publish it
  // (its boundary state is a copy of the online state, not a checkpoint).
  bool publishes_at_every_boundary() const { return boundary_ == model::BoundaryState::kStored; }
  // Matches end on multiples of this many tokens: where prefill pieces span
  // blocks, the model's piece grid (McModel::prefill_grid), so that a hit
  // prefills its tail in the same pieces as a miss and is bit-identical.
  int64_t prefix_match_grid() const;
  // The longest cached chain of whole blocks starting `tokens`, covering at
  // most `max_tokens` and ending on the match grid; counts the query in the
  // statistics.
  PrefixMatch Lookup(absl::Span<const int32_t> tokens, int64_t max_tokens,
                     uint64_t root = kRootKey);
  // A state as of the end of `match` (its checkpoints shared, its online
  // state rebuilt); NOT_FOUND if the entries went meanwhile.
  absl::StatusOr<SeqState> Adopt(const PrefixMatch& match, absl::string_view owner);
  // `s` closed the block `chain.open()` after `chain.key()`: caches the
  // block's boundary state (its checkpoint, which `s` may have followed by
  // more; or, where publishes_at_every_boundary, the state `s` is in now).
  // Does nothing when the chain is invalid, `s` is lossy, or the budget has
  // no room that can be made.
  void Publish(const SeqState& s, const TokenChain& chain);

  StoreStatus status() const;
  // Checkpoint slots of the device tier (what one session can read at once).
  int32_t device_checkpoint_slots() const { return pool_.device_capacity(); }
  int64_t state_bytes() const { return state_bytes_; }
  int64_t checkpoint_bytes() const { return ckpt_bytes_; }
  // Recounts every reference from its holders; INTERNAL naming the first
  // mismatch. Cheap enough to run whenever the engine is idle.
  absl::Status Audit() const;

 private:
  friend class SeqState;
  friend class Reservation;
  struct Record {
    bool alive = false;
    std::string owner;
    int32_t slot = -1;  // online state; may be shared with a fork
    std::vector<pool::CkptId> ckpts;
    pool::EvictionStats eviction;
    bool running = false;
    absl::Time last_used = absl::InfinitePast();
  };

  StateStore(const model::McModel& model, const StoreOptions& options);
  absl::Status Allocate(int64_t state_slots, const pool::PoolOptions& pool_options);
  int32_t NewRecord(absl::string_view owner);
  void Free(int32_t id);
  void DropFresh(std::vector<pool::CkptId>& fresh);
  // Drops one reference to each; a failure is a reference-count bug, logged.
  void UnrefAll(const std::vector<pool::CkptId>& ids);
  Record& rec(const SeqState& s) { return records_[s.id_]; }
  const Record& rec(const SeqState& s) const { return records_[s.id_]; }
  absl::StatusOr<int32_t> NewSlot(absl::string_view owner, absl::string_view why);
  void ReleaseSlot(int32_t slot);
  // Runs a tensor operation; a LibTorch exception becomes a status.
  template <typename F>
  absl::Status Guard(absl::string_view owner, absl::string_view what, F&& f);

  // Residency (state_residency.cc).
  absl::Status OwnState(Record& r);
  absl::Status MakeResident(Record& r, int64_t new_ckpts, std::vector<pool::CkptId>* fresh);
  std::vector<pool::Holder> Holders();
  pool::Holder HolderOf(Record& r);
  std::vector<int32_t> DeviceSlots(const std::vector<pool::CkptId>& ids) const;

  // Prefix cache (state_prefix.cc).
  bool ReclaimSlot(pool::Tier tier) override;
  bool ReleaseOne() override;
  void ReleaseEntries(std::vector<PrefixEntry> gone);
  bool MakeBudgetRoom(int64_t bytes, uint64_t keep);
  void ClearPrefixCache();

  const model::McModel& model_;
  const StoreOptions options_;
  const int64_t state_bytes_, ckpt_bytes_;
  const model::BoundaryState boundary_;
  pool::CheckpointPool pool_;
  pool::SlotAllocator slots_;
  model::CacheTensors cache_;
  std::vector<Record> records_;
  std::vector<int32_t> free_records_;
  PrefixIndex prefix_;
  int64_t query_tokens_ = 0, hit_tokens_ = 0;
};

template <typename F>
absl::Status StateStore::Guard(absl::string_view owner, absl::string_view what, F&& f) {
  try {
    if (options_.faults != nullptr) options_.faults->MaybeFail("state.allocate", owner);
    f();
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("could not ", what, " for '", owner, "': ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace mcserve::state

#endif  // MCSERVE_SERVER_STATE_STATE_STORE_H_
