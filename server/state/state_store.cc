// StateStore: construction, sequence handles, fork, description, status
// and the reference audit.
#include "server/state/state_store.h"

#include <algorithm>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "server/kernels/mc_params.h"
#include "server/util/log.h"

namespace mcserve::state {
namespace {

pool::PoolOptions PoolFor(const model::McModel& m, const StoreOptions& o) {
  pool::PoolOptions p;
  p.dtype = model::CkptScalarType(m.options().ckpt_dtype);
  p.device = m.options().device;
  if (!kernels::KeepsCheckpoints(m.config().aggregation)) {
    p.device_slots = 1;  // never used
    return p;
  }
  const int64_t per = m.checkpoint_bytes();
  p.device_slots = static_cast<int32_t>(std::min<int64_t>(o.checkpoint_pool_bytes / per, 1 << 30));
  p.host_slots = static_cast<int32_t>(std::min<int64_t>(o.host_pool_bytes / per, 1 << 30));
  return p;
}

// Online-state slots the prefix cache may hold: only where entries store
// their state (BoundaryState kStored), as many as the budget pays for.
int32_t PrefixStateSlots(const model::McModel& m, const StoreOptions& o) {
  if (o.prefix_cache_bytes <= 0 || m.boundary_state() != model::BoundaryState::kStored) return 0;
  // An entry is charged its state and, where kept, its checkpoint.
  const int64_t per_entry =
      m.state_bytes() +
      (kernels::KeepsCheckpoints(m.config().aggregation) ? m.checkpoint_bytes() : 0);
  return static_cast<int32_t>(std::min<int64_t>(o.prefix_cache_bytes / per_entry, 1 << 20));
}

}  // namespace

SeqState& SeqState::operator=(SeqState&& other) noexcept {
  if (this != &other) {
    Release();
    store_ = other.store_;
    id_ = other.id_;
    other.store_ = nullptr;
    other.id_ = -1;
  }
  return *this;
}

void SeqState::Release() {
  if (store_ != nullptr) store_->Free(id_);
  store_ = nullptr;
  id_ = -1;
}

Reservation& Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    if (store_ != nullptr) store_->DropFresh(fresh_);
    store_ = other.store_;
    state_slot_ = other.state_slot_;
    ckpt_slots_ = std::move(other.ckpt_slots_);
    new_slots_ = std::move(other.new_slots_);
    fresh_ = std::move(other.fresh_);
    other.store_ = nullptr;
    other.fresh_.clear();
  }
  return *this;
}

Reservation::~Reservation() {
  if (store_ != nullptr) store_->DropFresh(fresh_);
}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Create(const model::McModel& model,
                                                               const StoreOptions& options) {
  if (options.max_sequences < 1) {
    return absl::InvalidArgumentError("the state store needs room for at least one sequence");
  }
  const int64_t per_ckpt = model.checkpoint_bytes();
  if (kernels::KeepsCheckpoints(model.config().aggregation) &&
      options.checkpoint_pool_bytes < per_ckpt) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint pool of ", options.checkpoint_pool_bytes,
                     " bytes cannot hold one checkpoint (", per_ckpt, " bytes)"));
  }
  std::unique_ptr<StateStore> store(new StateStore(model, options));
  const int64_t slots = int64_t{options.max_sequences} + PrefixStateSlots(model, options);
  absl::Status st = store->Allocate(slots, PoolFor(model, options));
  if (!st.ok()) return st;
  return store;
}

StateStore::StateStore(const model::McModel& model, const StoreOptions& options)
    : model_(model),
      options_(options),
      state_bytes_(model.state_bytes()),
      ckpt_bytes_(model.checkpoint_bytes()),
      boundary_(model.boundary_state()),
      slots_(0) {}

absl::Status StateStore::Allocate(int64_t state_slots, const pool::PoolOptions& pool_options) {
  const int64_t want = state_slots * state_bytes_ +
                       int64_t{pool_options.device_slots} * ckpt_bytes_ +
                       int64_t{pool_options.host_slots} * ckpt_bytes_;
  try {
    pool_ = pool::CheckpointPool(model_.config(), pool_options);
    slots_ = pool::SlotAllocator(static_cast<int32_t>(state_slots));
    // Every slot is written when handed out (Create zeroes it, Fork, Import
    // and Adopt copy into it), so the pools start uninitialised.
    cache_ = model::AllocateCache(model_.config(), model_.state_layout(), state_slots, 0,
                                  model_.options().ckpt_dtype, model_.options().device,
                                  /*zero_online=*/false);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate the state pools (", want, " bytes in all): ", e.what()));
  }
  cache_.ckpt = pool_.device_states();
  cache_.ckpt_summary = pool_.device_summaries();
  return absl::OkStatus();
}

StateStore::~StateStore() {
  // Sequences must be gone first (their handles point here); entries are
  // released with the pools.
  ClearPrefixCache();
}

int32_t StateStore::NewRecord(absl::string_view owner) {
  int32_t id;
  if (free_records_.empty()) {
    id = static_cast<int32_t>(records_.size());
    records_.emplace_back();
  } else {
    id = free_records_.back();
    free_records_.pop_back();
    records_[id] = Record{};
  }
  records_[id].alive = true;
  records_[id].owner = std::string(owner);
  return id;
}

void StateStore::Free(int32_t id) {
  Record& r = records_[id];
  UnrefAll(r.ckpts);
  if (r.slot >= 0) ReleaseSlot(r.slot);
  r = Record{};
  free_records_.push_back(id);
}

void StateStore::DropFresh(std::vector<pool::CkptId>& fresh) {
  UnrefAll(fresh);
  fresh.clear();
}

void StateStore::UnrefAll(const std::vector<pool::CkptId>& ids) {
  for (pool::CkptId c : ids) {
    absl::Status st = pool_.Unref(c);
    if (!st.ok()) {
      MCSERVE_LOG(kError, "state store").Kv("error", st.ToString());
    }
  }
}

absl::StatusOr<int32_t> StateStore::NewSlot(absl::string_view owner, absl::string_view why) {
  std::optional<int32_t> slot = slots_.Allocate();
  if (!slot) {
    return absl::ResourceExhaustedError(absl::StrCat("no free state slot ", why, " '", owner, "' (",
                                                     slots_.capacity(), " in all)"));
  }
  return *slot;
}

void StateStore::ReleaseSlot(int32_t slot) {
  absl::Status st = slots_.Unref(slot);
  if (!st.ok()) {
    MCSERVE_LOG(kError, "state store").Kv("error", st.ToString());
  }
}

absl::StatusOr<SeqState> StateStore::Create(absl::string_view owner) {
  absl::StatusOr<int32_t> slot = NewSlot(owner, "for");
  if (!slot.ok()) return slot.status();
  absl::Status st = Guard(owner, "initialise a new state",
                          [&] { model::ResetSlot(model_.state_layout(), cache_.online, *slot); });
  if (!st.ok()) {
    ReleaseSlot(*slot);
    return st;
  }
  const int32_t id = NewRecord(owner);
  records_[id].slot = *slot;
  return SeqState(this, id);
}

absl::StatusOr<SeqState> StateStore::Fork(const SeqState& parent, absl::string_view owner) {
  const int32_t id = NewRecord(owner);  // before taking references: records_ may grow
  Record& c = records_[id];
  const Record& pr = records_[parent.id_];
  for (pool::CkptId ck : pr.ckpts) {
    absl::Status st = pool_.Ref(ck);
    if (!st.ok()) {
      Free(id);
      return st;
    }
    c.ckpts.push_back(ck);
  }
  absl::Status st = slots_.Ref(pr.slot);  // copied when either writes (OwnState)
  if (!st.ok()) {
    Free(id);
    return st;
  }
  c.slot = pr.slot;
  c.eviction.lossy = pr.eviction.lossy;
  return SeqState(this, id);
}

void StateStore::SetRunning(const SeqState& s, bool running, absl::Time now) {
  Record& r = rec(s);
  r.running = running;
  r.last_used = now;
}

int32_t StateStore::num_checkpoints(const SeqState& s) const {
  return static_cast<int32_t>(rec(s).ckpts.size());
}

bool StateStore::lossy(const SeqState& s) const { return rec(s).eviction.lossy; }

SeqInfo StateStore::Describe(const SeqState& s) const {
  const Record& r = rec(s);
  SeqInfo info;
  info.checkpoints = static_cast<int32_t>(r.ckpts.size());
  for (pool::CkptId c : r.ckpts)
    ++(pool_.tier(c) == pool::Tier::kDevice ? info.on_device : info.on_host);
  info.eviction = r.eviction;
  return info;
}

StoreStatus StateStore::status() const {
  StoreStatus s;
  if (kernels::KeepsCheckpoints(model_.config().aggregation)) {
    s.checkpoint_slots_used = pool_.device_used();
    s.checkpoint_slots_total = pool_.device_capacity();
    s.host_checkpoint_slots_used = pool_.host_used();
    s.host_checkpoint_slots_total = pool_.host_capacity();
  }
  s.checkpoints = pool_.live();
  s.checkpoint_refs = pool_.total_refs();
  s.state_slots_used = slots_.used();
  s.state_slots_total = slots_.capacity();
  s.evictions = pool_.counters();
  PrefixStats& p = s.prefix;
  p.budget_bytes = options_.prefix_cache_bytes;
  p.query_tokens = query_tokens_;
  p.hit_tokens = hit_tokens_;
  for (const auto& [key, e] : prefix_.entries()) {
    if (e.ckpt < 0) {
      ++p.entries_state_only;
      p.bytes_device += e.bytes;  // online states live with the model
    } else if (pool_.tier(e.ckpt) == pool::Tier::kDevice) {
      ++p.entries_device;
      p.bytes_device += e.bytes;
    } else {
      ++p.entries_host;
      p.bytes_host += e.bytes;
    }
  }
  return s;
}

absl::Status StateStore::Audit() const {
  std::unordered_map<pool::CkptId, int32_t> ckpt_refs;
  std::unordered_map<int32_t, int32_t> slot_refs;
  for (const Record& r : records_) {
    if (!r.alive) continue;
    for (pool::CkptId c : r.ckpts) ++ckpt_refs[c];
    if (r.slot >= 0) ++slot_refs[r.slot];
  }
  for (const auto& [key, e] : prefix_.entries()) {
    if (e.ckpt >= 0) ++ckpt_refs[e.ckpt];
    if (e.state_slot >= 0) ++slot_refs[e.state_slot];
  }
  int64_t total = 0;
  for (const auto& [c, n] : ckpt_refs) {
    total += n;
    if (!pool_.alive(c) || pool_.refs(c) != n) {
      return absl::InternalError(absl::StrCat("checkpoint ", c, " has ",
                                              pool_.alive(c) ? pool_.refs(c) : 0,
                                              " references but ", n, " holders"));
    }
  }
  if (total != pool_.total_refs() || static_cast<int32_t>(ckpt_refs.size()) != pool_.live()) {
    return absl::InternalError(absl::StrCat("the pool counts ", pool_.live(), " checkpoints and ",
                                            pool_.total_refs(), " references; holders have ",
                                            ckpt_refs.size(), " and ", total));
  }
  for (const auto& [slot, n] : slot_refs) {
    if (slots_.refcount(slot) != n) {
      return absl::InternalError(absl::StrCat("state slot ", slot, " has ", slots_.refcount(slot),
                                              " references but ", n, " holders"));
    }
  }
  if (static_cast<int32_t>(slot_refs.size()) != slots_.used()) {
    return absl::InternalError(absl::StrCat(slots_.used(), " state slots are in use but ",
                                            slot_refs.size(), " have holders"));
  }
  return absl::OkStatus();
}

}  // namespace mcserve::state
