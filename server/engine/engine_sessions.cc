// The engine thread's session commands and session memory.
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/engine/active_request.h"
#include "server/engine/engine.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace mcserve::engine {
namespace {

std::string NewSessionId() {
  static absl::BitGen* gen = new absl::BitGen();
  return absl::StrFormat("sess-%016x", absl::Uniform<uint64_t>(*gen));
}

}  // namespace

void Engine::CreateSession(std::string session_id, SessionCallback done) {
  Post([this, id = std::move(session_id), done = std::move(done)]() mutable {
    absl::StatusOr<Session*> s = AddSession(std::move(id));
    if (!s.ok()) {
      done(s.status());
      return;
    }
    absl::StatusOr<state::SeqState> st = store_->Create((*s)->id);
    if (!st.ok()) {
      sessions_.erase((*s)->id);
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
  if (id.empty()) {
    do id = NewSessionId();
    while (sessions_.count(id) != 0);
  }
  if (sessions_.count(id) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("session '", id, "' already exists"));
  }
  if (static_cast<int32_t>(sessions_.size()) >= options_.max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat("session limit reached (",
                                                     options_.max_sessions,
                                                     ", --max_sessions); delete sessions first"));
  }
  auto s = std::make_unique<Session>();
  s->id = id;
  s->pending_token = tokenizer_.bos_id();
  s->chain = state::TokenChain(model_->config().segment_length);
  s->last_used = clock_->Now();
  Session* raw = s.get();
  sessions_[id] = std::move(s);
  return raw;
}

void Engine::ForkSession(std::string parent_id, std::string child_id, SessionCallback done) {
  Post([this, parent_id = std::move(parent_id), child_id = std::move(child_id),
        done = std::move(done)]() mutable {
    absl::StatusOr<Session*> found = IdleSession(parent_id, "fork");
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
      sessions_.erase(c.id);
      done(st.status());
      return;
    }
    c.state = *std::move(st);
    c.position = parent.position;
    c.pending_token = parent.pending_token;
    c.chain = parent.chain;
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
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = *it->second;
    if (s.busy_with == 0 && now - s.last_used >= ttl) {
      MCSERVE_LOG(kInfo, "session expired")
          .Kv("session", s.id)
          .Kv("idle_s", absl::ToDoubleSeconds(now - s.last_used));
      it = sessions_.erase(it);  // frees its state
    } else {
      ++it;
    }
  }
}

void Engine::ListSessions(std::function<void(std::vector<std::string>)> done) {
  Post([this, done = std::move(done)] {
    std::vector<std::string> ids;
    for (const auto& [id, s] : sessions_) ids.push_back(id);
    done(std::move(ids));
  });
}

absl::StatusOr<Session*> Engine::FindSession(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrCat("session '", id, "' not found"));
  }
  return it->second.get();
}

absl::StatusOr<Session*> Engine::IdleSession(const std::string& id, absl::string_view action) {
  ASSIGN_OR_RETURN(Session * s, FindSession(id));
  if (s->busy_with != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("session '", id, "' has a request in flight; ", action, " it when idle"));
  }
  if (s->broken) {
    return absl::DataLossError(absl::StrCat("session '", id, "' was damaged; delete it"));
  }
  return s;
}

void Engine::GetSession(std::string session_id, SessionCallback done) {
  Post([this, id = std::move(session_id), done = std::move(done)] {
    absl::StatusOr<Session*> s = FindSession(id);
    if (!s.ok()) {
      done(s.status());
      return;
    }
    done(Describe(**s));
  });
}

void Engine::DeleteSession(std::string session_id, DoneCallback done) {
  Post([this, id = std::move(session_id), done = std::move(done)] {
    absl::StatusOr<Session*> found = FindSession(id);
    if (!found.ok()) {
      done(found.status());
      return;
    }
    Session& s = **found;
    if (s.busy_with != 0) Finish(*active_.at(s.busy_with), FinishReason::kCancelled);
    sessions_.erase(id);  // frees its state
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
  info.checkpoints_on_device = st.on_device;
  info.checkpoints_on_host = st.on_host;
  info.eviction = st.eviction;
  return info;
}

}  // namespace mcserve::engine
