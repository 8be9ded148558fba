// Who a session or request belongs to, and how much of the server each
// owner may hold.
//
// With authentication on, every session and request id the engine sees is
// qualified by its owner, the authenticated principal: "<owner>/<name>"
// (client ids may not contain '/', so the split is unique). An id without
// '/' has no owner (authentication off). An id that ends in '/' ("alice/")
// asks for a generated name under that owner (CreateSession, ForkSession)
// or for the snapshot's own name re-scoped to it (ImportSession).
//
// Limits are per owner and counted by the engine at admission, so one
// owner at its limit is refused there and never delays the others:
//   sessions          live named sessions (create, fork, import);
//   requests          Generate requests queued or running;
//   checkpoint_bytes  checkpoint bytes its sessions hold, plus what its
//                     requests in flight may still add (each reserves its
//                     prompt's and max_tokens' segments at admission).
// Zero: no limit.
#ifndef MCSERVE_SERVER_ENGINE_OWNER_H_
#define MCSERVE_SERVER_ENGINE_OWNER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/strings/string_view.h"

namespace mcserve::engine {

inline constexpr char kOwnerSeparator = '/';

// "" when `id` has no owner.
absl::string_view OwnerOf(absl::string_view id);
// `id` without its owner.
absl::string_view NameOf(absl::string_view id);
// "<owner>/<name>"; `name` alone when `owner` is empty.
std::string Qualify(absl::string_view owner, absl::string_view name);

// Session names: 1..128 of [A-Za-z0-9._:-]; owners (principal names): 1..128
// of [A-Za-z0-9._:@-].
bool IsValidName(absl::string_view name);
bool IsValidOwner(absl::string_view owner);
// A name, or "<owner>/<name>" with both valid.
bool IsValidId(absl::string_view id);

struct OwnerLimits {
  int32_t sessions = 0;
  int32_t requests = 0;
  int64_t checkpoint_bytes = 0;
};

// The limits of one owner ("" included); null: no limits for anyone.
using OwnerLimitsFn = std::function<OwnerLimits(absl::string_view owner)>;

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_OWNER_H_
