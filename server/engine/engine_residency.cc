// The engine thread's checkpoint residency: before a session's tokens run,
// every checkpoint it reads is on the device and pinned, and the checkpoints
// its tokens will close have device slots; eviction (pool/eviction.h) makes
// the room.
#include "absl/strings/str_cat.h"
#include "server/engine/active_request.h"
#include "server/engine/engine.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace mcserve::engine {

pool::Holder Engine::HolderOf(Session& s) {
  pool::Holder h;
  h.id = s.id.empty() ? absl::string_view("(one-shot)") : absl::string_view(s.id);
  h.ckpts = &s.ckpts;
  h.running = s.busy_with != 0;
  h.last_used = s.last_used;
  h.stats = &s.eviction;
  return h;
}

std::vector<pool::Holder> Engine::Holders() {
  std::vector<pool::Holder> holders;
  holders.reserve(sessions_.size() + active_.size());
  for (auto& [id, s] : sessions_) holders.push_back(HolderOf(*s));
  for (auto& [id, a] : active_) {
    if (a->own != nullptr) holders.push_back(HolderOf(*a->own));
  }
  return holders;
}

absl::StatusOr<std::vector<pool::CkptId>> Engine::Reserve(Session& s, int64_t n_new) {
  const int64_t capacity = pool_.device_capacity();
  if (n_new > capacity) {
    return absl::ResourceExhaustedError(absl::StrCat("one step needs ", n_new,
                                                     " new checkpoints but the device tier holds ",
                                                     capacity, " (raise --checkpoint_pool)"));
  }
  if (static_cast<int64_t>(s.ckpts.size()) + n_new > capacity) {
    const bool was_lossy = s.eviction.lossy;
    RETURN_IF_ERROR(
        pool::ShrinkHolder(pool_, HolderOf(s), capacity - n_new, options_.lossy_eviction));
    if (!was_lossy) {
      MCSERVE_LOG(kWarning, "session lost checkpoints").Kv("session", s.id);
    }
  }
  for (pool::CkptId id : s.ckpts) pool_.Pin(id);
  // Everything this session still needs on the device: its checkpoints on
  // the host, then the new ones. Each eviction pass makes room for as many
  // as it can (fetching first frees host slots for the next pass).
  int32_t wanted = static_cast<int32_t>(n_new);
  for (pool::CkptId id : s.ckpts) wanted += pool_.tier(id) == pool::Tier::kHost ? 1 : 0;
  auto make_room = [&]() -> absl::Status {
    if (!pool_.device_full()) return absl::OkStatus();
    return pool::FreeDeviceSlots(pool_, Holders(), options_.lossy_eviction, wanted);
  };
  for (pool::CkptId id : s.ckpts) {
    if (pool_.tier(id) == pool::Tier::kDevice) continue;
    RETURN_IF_ERROR(make_room());
    pool_.Fetch(id);
    ++s.eviction.fetched;
    --wanted;
  }
  std::vector<pool::CkptId> fresh;
  for (int64_t i = 0; i < n_new; ++i) {
    absl::Status st = make_room();
    std::optional<pool::CkptId> id = st.ok() ? pool_.Create() : std::nullopt;
    if (!id) {
      for (pool::CkptId got : fresh) pool_.Unref(got);
      return st.ok() ? absl::InternalError("no device slot after eviction") : st;
    }
    pool_.Pin(*id);
    fresh.push_back(*id);
    --wanted;
  }
  return fresh;
}

absl::Status Engine::OwnState(Session& s) {
  if (state_slots_.refcount(s.state_slot) == 1) return absl::OkStatus();
  std::optional<int32_t> slot = state_slots_.Allocate();
  if (!slot) {
    return absl::ResourceExhaustedError(absl::StrCat("no free state slot to copy forked session '",
                                                     s.id, "' into (", state_slots_.capacity(),
                                                     " in all)"));
  }
  cache_.state[*slot].copy_(cache_.state[s.state_slot]);
  cache_.key_sum[*slot].copy_(cache_.key_sum[s.state_slot]);
  state_slots_.Unref(s.state_slot);
  s.state_slot = *slot;
  return absl::OkStatus();
}

std::vector<int32_t> Engine::DeviceSlots(const std::vector<pool::CkptId>& ids) const {
  std::vector<int32_t> slots;
  slots.reserve(ids.size());
  for (pool::CkptId id : ids) slots.push_back(pool_.device_slot(id));
  return slots;
}

}  // namespace mcserve::engine
