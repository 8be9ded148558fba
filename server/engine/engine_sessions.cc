// The engine thread's session commands (the table itself: session_table.h).
#include "absl/strings/str_cat.h"
#include "server/engine/active_request.h"
#include "server/engine/engine.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace mcserve::engine {

void Engine::CreateSession(std::string session_id, SessionCallback done) {
  Post([this, id = std::move(session_id), done = std::move(done)]() mutable {
    absl::StatusOr<Session*> s = AddSession(std::move(id));
    if (!s.ok()) {
      done(s.status());
      return;
    }
    absl::StatusOr<state::SeqState> st = store_->Create((*s)->id);
    if (!st.ok()) {
      sessions_.Erase((*s)->id);
      done(st.status());
      return;
    }
    (*s)->state = *std::move(st);
    Touch(**s);
    done(Describe(**s));
  });
}

absl::StatusOr<Session*> Engine::AddSession(std::string id) {
  if (draining_) return absl::UnavailableError("server is draining for shutdown; retry elsewhere");
  RETURN_IF_ERROR(CheckSessionQuota(OwnerOf(id)));
  absl::StatusOr<Session*> s = sessions_.Add(std::move(id), tokenizer_->bos_id(),
                                             model_->config().segment_length, clock_->Now());
  if (s.ok()) (*s)->version = ++last_version_;
  return s;
}

void Engine::ForkSession(std::string parent_id, std::string child_id, SessionCallback done) {
  Post([this, parent_id = std::move(parent_id), child_id = std::move(child_id),
        done = std::move(done)]() mutable {
    absl::StatusOr<Session*> found = sessions_.Idle(parent_id, "fork");
    if (!found.ok()) {
      done(found.status());
      return;
    }
    Session& parent = **found;
    absl::StatusOr<Session*> child = AddSession(std::move(child_id));
    if (!child.ok()) {
      done(child.status());
      return;
    }
    Session& c = **child;
    absl::StatusOr<state::SeqState> st = store_->Fork(parent.state, c.id);
    if (!st.ok()) {
      sessions_.Erase(c.id);
      done(st.status());
      return;
    }
    c.state = *std::move(st);
    c.position = parent.position;
    c.pending_token = parent.pending_token;
    c.text_at_start = parent.text_at_start;
    c.chain = parent.chain;
    c.cache_root = parent.cache_root;
    parent.last_used = clock_->Now();
    Touch(parent);
    Touch(c);
    done(Describe(c));
  });
}

void Engine::ExpireIdleSessions() {
  const absl::Duration ttl = options_.session_idle_ttl;
  if (ttl <= absl::ZeroDuration()) return;
  const absl::Time now = clock_->Now();
  if (now < next_expiry_check_) return;
  next_expiry_check_ = now + std::min(ttl / 4, absl::Seconds(1));
  for (const auto& [id, idle] : sessions_.Expire(now, ttl)) {
    MCSERVE_LOG(kInfo, "session expired")
        .Kv("session", id)
        .Kv("idle_s", absl::ToDoubleSeconds(idle));
  }
}

void Engine::ListSessions(std::function<void(std::vector<std::string>)> done) {
  Post([this, done = std::move(done)] { done(sessions_.Ids()); });
}

void Engine::DescribeSessions(std::function<void(std::vector<SessionInfo>)> done) {
  Post([this, done = std::move(done)] {
    std::vector<SessionInfo> out;
    sessions_.ForEach([&](const Session& s) { out.push_back(Describe(s)); });
    done(std::move(out));
  });
}

void Engine::GetSession(std::string session_id, SessionCallback done) {
  Post([this, id = std::move(session_id), done = std::move(done)] {
    absl::StatusOr<Session*> s = sessions_.Find(id);
    if (!s.ok()) {
      done(s.status());
      return;
    }
    done(Describe(**s));
  });
}

void Engine::DeleteSession(std::string session_id, DoneCallback done) {
  Post([this, id = std::move(session_id), done = std::move(done)] {
    absl::StatusOr<Session*> found = sessions_.Find(id);
    if (!found.ok()) {
      done(found.status());
      return;
    }
    Session& s = **found;
    if (s.busy_with != 0) Finish(*active_.at(s.busy_with), FinishReason::kCancelled);
    sessions_.Erase(id);  // frees its state
    done(absl::OkStatus());
  });
}

SessionInfo Engine::Describe(const Session& s) const {
  SessionInfo info;
  info.id = s.id;
  info.num_tokens = s.num_tokens();
  const state::SeqInfo st = s.state.valid() ? store_->Describe(s.state) : state::SeqInfo{};
  info.num_checkpoints = st.checkpoints;
  info.checkpoint_bytes = info.num_checkpoints * checkpoint_bytes();
  info.state_bytes = state_bytes();
  info.busy = s.busy_with != 0;
  info.version = s.version;
  info.checkpoints_on_device = st.on_device;
  info.checkpoints_on_host = st.on_host;
  info.eviction = st.eviction;
  info.last_used = s.last_used;
  return info;
}

}  // namespace mcserve::engine
