// The ids a caller uses, as the engine names them (engine/owner.h). With
// authentication on, every principal has its own namespace of session and
// request ids: "chat" from alice is the engine's "alice/chat", and bob's
// "chat" is another session; no principal can name, probe or collide with
// another's. An admin may also address any session or request by its full
// id "<principal>/<id>" (GetSession, DeleteSession, ForkSession's parent,
// ExportSession, Abort) and sees other principals' sessions under it.
// Authentication off: ids pass through unchanged.
#ifndef MCSERVE_SERVER_RPC_CALLER_SCOPE_H_
#define MCSERVE_SERVER_RPC_CALLER_SCOPE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/rpc/auth.h"
#include "server/rpc/validation.h"

namespace mcserve::rpc {

class CallerScope {
 public:
  // Authentication off.
  CallerScope() = default;
  explicit CallerScope(const Principal& p) : owner_(p.name), admin_(p.role == Role::kAdmin) {}

  // The engine id of an existing session the client names `id`:
  // INVALID_ARGUMENT naming `field` when it is not a valid id.
  absl::StatusOr<std::string> Session(const std::string& id, const RequestLimits& limits,
                                      absl::string_view field) const;
  // The engine id for a session the client creates as `id` ("": a
  // generated name under the caller's namespace).
  absl::StatusOr<std::string> NewSession(const std::string& id, const RequestLimits& limits,
                                         absl::string_view field) const;
  // The engine id of the caller's own request `id`.
  std::string OwnRequest(const std::string& id) const { return engine::Qualify(owner_, id); }
  // The engine id of a request to abort (an admin's "<principal>/<id>": as is).
  std::string Request(const std::string& id) const;
  // An engine id as this caller sees it: its own without the owner, others'
  // (an admin's view) in full.
  std::string Show(absl::string_view engine_id) const;
  // Whether the caller may see the session `engine_id` (ListSessions).
  bool Sees(absl::string_view engine_id) const;

  const std::string& owner() const { return owner_; }

 private:
  std::string owner_;  // "" with authentication off
  bool admin_ = false;
};

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_CALLER_SCOPE_H_
