#include "server/engine/session_table.h"

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/engine/owner.h"

namespace mcserve::engine {
namespace {

std::string NewSessionId() {
  static absl::BitGen* gen = new absl::BitGen();
  return absl::StrFormat("sess-%016x", absl::Uniform<uint64_t>(*gen));
}

}  // namespace

absl::StatusOr<Session*> SessionTable::Add(std::string id, int32_t bos_id, int32_t segment_length,
                                           absl::Time now) {
  if (id.empty() || id.back() == kOwnerSeparator) {
    const std::string owner = id;
    do id = owner + NewSessionId();
    while (sessions_.count(id) != 0);
  }
  if (sessions_.count(id) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("session '", id, "' already exists"));
  }
  if (size() >= max_sessions_) {
    return absl::ResourceExhaustedError(absl::StrCat("session limit reached (", max_sessions_,
                                                     ", --max_sessions); delete sessions first"));
  }
  auto s = std::make_unique<Session>();
  s->id = id;
  s->StartHistory(bos_id, segment_length, state::RootKey(OwnerOf(id)));
  s->last_used = now;
  Session* raw = s.get();
  sessions_[id] = std::move(s);
  return raw;
}

absl::StatusOr<Session*> SessionTable::Find(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrCat("session '", id, "' not found"));
  }
  return it->second.get();
}

absl::StatusOr<Session*> SessionTable::Idle(const std::string& id, absl::string_view action) {
  absl::StatusOr<Session*> s = Find(id);
  if (!s.ok()) return s;
  if ((*s)->busy_with != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("session '", id, "' has a request in flight; ", action, " it when idle"));
  }
  if ((*s)->broken) {
    return absl::DataLossError(absl::StrCat("session '", id, "' was damaged; delete it"));
  }
  return s;
}

std::vector<std::pair<std::string, absl::Duration>> SessionTable::Expire(absl::Time now,
                                                                         absl::Duration ttl) {
  std::vector<std::pair<std::string, absl::Duration>> gone;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    const Session& s = *it->second;
    if (s.busy_with == 0 && now - s.last_used >= ttl) {
      gone.emplace_back(s.id, now - s.last_used);
      it = sessions_.erase(it);  // frees its state
    } else {
      ++it;
    }
  }
  return gone;
}

std::vector<std::string> SessionTable::Ids() const {
  std::vector<std::string> ids;
  for (const auto& [id, s] : sessions_) ids.push_back(id);
  return ids;
}

}  // namespace mcserve::engine
