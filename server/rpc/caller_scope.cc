#include "server/rpc/caller_scope.h"

#include "absl/strings/str_cat.h"
#include "server/engine/owner.h"

namespace mcserve::rpc {

absl::StatusOr<std::string> CallerScope::Session(const std::string& id, const RequestLimits& limits,
                                                 absl::string_view field) const {
  if (admin_ && id.find(engine::kOwnerSeparator) != std::string::npos) {
    if (!engine::IsValidId(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " must be a session id or PRINCIPAL/SESSION_ID"));
    }
    return id;
  }
  if (absl::Status s = ValidateSessionId(id, limits, field); !s.ok()) return s;
  return engine::Qualify(owner_, id);
}

absl::StatusOr<std::string> CallerScope::NewSession(const std::string& id,
                                                    const RequestLimits& limits,
                                                    absl::string_view field) const {
  if (id.empty()) {
    return owner_.empty() ? std::string()
                          : absl::StrCat(owner_, std::string(1, engine::kOwnerSeparator));
  }
  return Session(id, limits, field);
}

std::string CallerScope::Request(const std::string& id) const {
  if (admin_ && id.find(engine::kOwnerSeparator) != std::string::npos) return id;
  return OwnRequest(id);
}

std::string CallerScope::Show(absl::string_view engine_id) const {
  if (engine::OwnerOf(engine_id) == owner_) return std::string(engine::NameOf(engine_id));
  return std::string(engine_id);
}

bool CallerScope::Sees(absl::string_view engine_id) const {
  return admin_ || engine::OwnerOf(engine_id) == owner_;
}

}  // namespace mcserve::rpc
