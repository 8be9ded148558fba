// The engine's named sessions: creation under the session limit, lookup
// with the checks every session command shares, idle expiry. Sessions are
// owned here; a Session's state handle frees its model state when the
// session goes. One-shot requests own their sessions and are not listed.
// Thread-compatible: the engine thread only.
#ifndef MCSERVE_SERVER_ENGINE_SESSION_TABLE_H_
#define MCSERVE_SERVER_ENGINE_SESSION_TABLE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/engine/session.h"

namespace mcserve::engine {

class SessionTable {
 public:
  explicit SessionTable(int32_t max_sessions) : max_sessions_(max_sessions) {}

  // A new session named `id` ("": a generated id; "<owner>/": a generated
  // name under that owner, owner.h) with BOS pending and no
  // state yet. ALREADY_EXISTS, or RESOURCE_EXHAUSTED at the limit.
  absl::StatusOr<Session*> Add(std::string id, int32_t bos_id, int32_t segment_length,
                               absl::Time now);
  // NOT_FOUND when there is no such session.
  absl::StatusOr<Session*> Find(const std::string& id);
  // A session that exists, has no request in flight and is not damaged:
  // FAILED_PRECONDITION or DATA_LOSS otherwise; `action` names what the
  // caller wants to do, for the message.
  absl::StatusOr<Session*> Idle(const std::string& id, absl::string_view action);
  // Deletes the session (and frees its state).
  void Erase(const std::string& id) { sessions_.erase(id); }
  // Deletes idle sessions unused for `ttl`; returns how long each had idled.
  std::vector<std::pair<std::string, absl::Duration>> Expire(absl::Time now, absl::Duration ttl);

  std::vector<std::string> Ids() const;
  int32_t size() const { return static_cast<int32_t>(sessions_.size()); }
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [id, s] : sessions_) f(*s);
  }
  void Clear() { sessions_.clear(); }

 private:
  const int32_t max_sessions_;
  std::map<std::string, std::unique_ptr<Session>> sessions_;  // stable addresses
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_SESSION_TABLE_H_
