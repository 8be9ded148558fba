// Per-owner limits (owner.h), checked on the engine thread at admission.
#include "absl/strings/str_cat.h"
#include "server/engine/active_request.h"
#include "server/engine/engine.h"
#include "server/engine/owner.h"

namespace mcserve::engine {
namespace {

absl::Status OverQuota(absl::string_view owner, absl::string_view quota, int64_t used, int64_t adds,
                       int64_t limit) {
  return absl::ResourceExhaustedError(
      absl::StrCat("quota '", quota, "' of principal '", owner, "' reached: ", used, " in use",
                   adds > 0 ? " + " : "", adds > 0 ? absl::StrCat(adds, " for this request") : "",
                   " > limit ", limit, "; end or delete some first"));
}

}  // namespace

Engine::OwnerUsage Engine::UsageOf(absl::string_view owner) const {
  OwnerUsage u;
  sessions_.ForEach([&](const Session& s) {
    if (OwnerOf(s.id) != owner) return;
    ++u.sessions;
    // A busy session's bytes are inside its request's reservation.
    if (s.busy_with == 0 && s.state.valid()) {
      u.checkpoint_bytes += store_->num_checkpoints(s.state) * checkpoint_bytes();
    }
  });
  for (const auto& [id, a] : active_) {
    if (OwnerOf(a->req.request_id) == owner) ++u.requests;
    if (a->quota_owner == owner) u.checkpoint_bytes += a->reserved_ckpt_bytes;
  }
  return u;
}

absl::Status Engine::CheckSessionQuota(absl::string_view owner) const {
  if (!options_.owner_limits) return absl::OkStatus();
  const OwnerLimits lim = options_.owner_limits(owner);
  if (lim.sessions <= 0) return absl::OkStatus();
  const OwnerUsage u = UsageOf(owner);
  if (u.sessions >= lim.sessions) return OverQuota(owner, "sessions", u.sessions, 1, lim.sessions);
  return absl::OkStatus();
}

absl::Status Engine::ReserveQuota(Active& a) {
  const Session& s = *a.session;
  a.quota_owner = std::string(OwnerOf(s.ephemeral ? a.req.request_id : s.id));
  const int64_t held = s.state.valid() ? store_->num_checkpoints(s.state) : 0;
  const int64_t tokens =
      static_cast<int64_t>(a.req.prompt.size()) + 1 + std::max<int64_t>(a.req.params.max_tokens, 0);
  a.reserved_ckpt_bytes = CheckpointsAfter(Shape(), s.position, held, tokens) * checkpoint_bytes();
  if (!options_.owner_limits) return absl::OkStatus();

  const absl::string_view req_owner = OwnerOf(a.req.request_id);
  const OwnerLimits req_lim = options_.owner_limits(req_owner);
  if (req_lim.requests > 0) {
    const OwnerUsage u = UsageOf(req_owner);
    if (u.requests >= req_lim.requests) {
      return OverQuota(req_owner, "requests", u.requests, 1, req_lim.requests);
    }
  }
  const OwnerLimits lim =
      a.quota_owner == req_owner ? req_lim : options_.owner_limits(a.quota_owner);
  if (lim.checkpoint_bytes > 0) {
    const OwnerUsage u = UsageOf(a.quota_owner);
    // This request's session is idle, so its bytes are in `u` and in the
    // reservation: count them once.
    const int64_t own = held * checkpoint_bytes();
    const int64_t used = u.checkpoint_bytes - (s.ephemeral ? 0 : own);
    if (used + a.reserved_ckpt_bytes > lim.checkpoint_bytes) {
      return OverQuota(a.quota_owner, "checkpoint_bytes", used, a.reserved_ckpt_bytes,
                       lim.checkpoint_bytes);
    }
  }
  return absl::OkStatus();
}

}  // namespace mcserve::engine
