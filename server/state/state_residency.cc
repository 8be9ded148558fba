// StateStore residency: before a sequence's tokens run, its online state is
// its own, every checkpoint it reads is on the device and pinned, and the
// checkpoints its tokens will close have device slots; eviction
// (pool/eviction.h) makes the room, the prefix cache giving up first.
#include "absl/strings/str_cat.h"
#include "server/state/state_store.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace mcserve::state {

pool::Holder StateStore::HolderOf(Record& r) {
  pool::Holder h;
  h.id = r.owner;
  h.ckpts = &r.ckpts;
  h.running = r.running;
  h.last_used = r.last_used;
  h.stats = &r.eviction;
  return h;
}

std::vector<pool::Holder> StateStore::Holders() {
  std::vector<pool::Holder> holders;
  holders.reserve(records_.size());
  for (Record& r : records_) {
    if (r.alive) holders.push_back(HolderOf(r));
  }
  return holders;
}

std::vector<int32_t> StateStore::DeviceSlots(const std::vector<pool::CkptId>& ids) const {
  std::vector<int32_t> slots;
  slots.reserve(ids.size());
  for (pool::CkptId id : ids) slots.push_back(pool_.device_slot(id));
  return slots;
}

absl::Status StateStore::OwnState(Record& r) {
  if (slots_.refcount(r.slot) == 1) return absl::OkStatus();
  ASSIGN_OR_RETURN(const int32_t slot, NewSlot(r.owner, "to copy forked sequence"));
  const int32_t from = r.slot;
  absl::Status st = Guard(r.owner, "copy a forked state", [&] {
    for (const at::Tensor& t : cache_.online) t[slot].copy_(t[from]);
  });
  if (!st.ok()) {
    ReleaseSlot(slot);
    return st;
  }
  ReleaseSlot(from);
  r.slot = slot;
  return absl::OkStatus();
}

absl::Status StateStore::MakeResident(Record& r, int64_t n_new, std::vector<pool::CkptId>* fresh) {
  const int64_t capacity = pool_.device_capacity();
  if (n_new > capacity) {
    return absl::ResourceExhaustedError(absl::StrCat("one step needs ", n_new,
                                                     " new checkpoints but the device tier holds ",
                                                     capacity, " (raise --checkpoint_pool)"));
  }
  if (static_cast<int64_t>(r.ckpts.size()) + n_new > capacity) {
    const bool was_lossy = r.eviction.lossy;
    RETURN_IF_ERROR(
        pool::ShrinkHolder(pool_, HolderOf(r), capacity - n_new, options_.lossy_eviction, this));
    if (!was_lossy) {
      MCSERVE_LOG(kWarning, "session lost checkpoints").Kv("session", r.owner);
    }
  }
  for (pool::CkptId id : r.ckpts) pool_.Pin(id);
  // Everything this sequence still needs on the device: its checkpoints on
  // the host, then the new ones. Each eviction pass makes room for as many
  // as it can (fetching first frees host slots for the next pass).
  int32_t wanted = static_cast<int32_t>(n_new);
  for (pool::CkptId id : r.ckpts) wanted += pool_.tier(id) == pool::Tier::kHost ? 1 : 0;
  auto make_room = [&]() -> absl::Status {
    if (!pool_.device_full()) return absl::OkStatus();
    return pool::FreeDeviceSlots(pool_, Holders(), options_.lossy_eviction, wanted, this);
  };
  for (pool::CkptId id : r.ckpts) {
    if (pool_.tier(id) == pool::Tier::kDevice) continue;
    RETURN_IF_ERROR(make_room());
    pool_.Fetch(id);
    ++r.eviction.fetched;
    --wanted;
  }
  for (int64_t i = 0; i < n_new; ++i) {
    absl::Status st = make_room();
    std::optional<pool::CkptId> id = st.ok() ? pool_.Create() : std::nullopt;
    if (!id) return st.ok() ? absl::InternalError("no device slot after eviction") : st;
    pool_.Pin(*id);
    fresh->push_back(*id);
    --wanted;
  }
  return absl::OkStatus();
}

absl::StatusOr<Reservation> StateStore::Reserve(SeqState& s, int64_t new_ckpts) {
  Record& r = rec(s);
  RETURN_IF_ERROR(OwnState(r));
  Reservation res;
  res.store_ = this;  // from here on, fresh checkpoints go back unless committed
  absl::Status st = MakeResident(r, new_ckpts, &res.fresh_);
  if (!st.ok()) return st;  // `res` gives back what it took
  res.state_slot_ = r.slot;
  // Taken after every eviction of this call: pinned slots no longer move.
  res.ckpt_slots_ = DeviceSlots(r.ckpts);
  res.new_slots_ = DeviceSlots(res.fresh_);
  return res;
}

void StateStore::Commit(SeqState& s, Reservation r) {
  Record& rec_ = rec(s);
  rec_.ckpts.insert(rec_.ckpts.end(), r.fresh_.begin(), r.fresh_.end());
  r.fresh_.clear();
  r.store_ = nullptr;
}

void StateStore::Observe(const SeqState& s, absl::Span<const float> weights) {
  const Record& r = rec(s);
  for (size_t j = 0; j < r.ckpts.size() && j < weights.size(); ++j) {
    pool_.Observe(r.ckpts[j], weights[j]);
  }
}

}  // namespace mcserve::state
