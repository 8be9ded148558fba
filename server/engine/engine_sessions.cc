// The engine thread's session commands and session memory.
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/engine/active_request.h"
#include "server/engine/engine.h"
#include "server/model/cache_tensors.h"

namespace mcserve::engine {
namespace {

std::string NewSessionId() {
  static absl::BitGen* gen = new absl::BitGen();
  return absl::StrFormat("sess-%016x", absl::Uniform<uint64_t>(*gen));
}

}  // namespace

void Engine::CreateSession(std::string session_id, SessionCallback done) {
  Post([this, id = std::move(session_id), done = std::move(done)]() mutable {
    if (draining_) {
      done(absl::UnavailableError("server is draining for shutdown; retry elsewhere"));
      return;
    }
    if (id.empty()) {
      do id = NewSessionId();
      while (sessions_.count(id) != 0);
    }
    if (sessions_.count(id) != 0) {
      done(absl::AlreadyExistsError(absl::StrCat("session '", id, "' already exists")));
      return;
    }
    if (static_cast<int32_t>(sessions_.size()) >= options_.max_sessions) {
      done(absl::ResourceExhaustedError(absl::StrCat("session limit reached (",
                                                     options_.max_sessions,
                                                     ", --max_sessions); delete sessions first")));
      return;
    }
    auto s = std::make_unique<Session>();
    s->id = id;
    s->pending_token = tokenizer_.bos_id();
    s->last_used = clock_->Now();
    absl::Status st = NewSessionState(*s);
    if (!st.ok()) {
      done(st);
      return;
    }
    SessionInfo info = Describe(*s);
    sessions_[id] = std::move(s);
    done(info);
  });
}

void Engine::GetSession(std::string session_id, SessionCallback done) {
  Post([this, id = std::move(session_id), done = std::move(done)] {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) {
      done(absl::NotFoundError(absl::StrCat("session '", id, "' not found")));
      return;
    }
    done(Describe(*it->second));
  });
}

void Engine::DeleteSession(std::string session_id, DoneCallback done) {
  Post([this, id = std::move(session_id), done = std::move(done)] {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) {
      done(absl::NotFoundError(absl::StrCat("session '", id, "' not found")));
      return;
    }
    Session& s = *it->second;
    if (s.busy_with != 0) Finish(*active_.at(s.busy_with), FinishReason::kCancelled);
    FreeSessionState(s);
    sessions_.erase(it);
    done(absl::OkStatus());
  });
}

absl::Status Engine::NewSessionState(Session& s) {
  std::optional<int32_t> slot = state_slots_.Allocate();
  if (!slot) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no free state slot (", state_slots_.capacity(), " in all)"));
  }
  s.state_slot = *slot;
  cache_.state[*slot].zero_();
  cache_.key_sum[*slot].zero_();
  return absl::OkStatus();
}

void Engine::FreeSessionState(Session& s) {
  for (int32_t c : s.ckpts) ckpt_slots_.Unref(c);
  s.ckpts.clear();
  if (s.state_slot >= 0) state_slots_.Unref(s.state_slot);
  s.state_slot = -1;
}

SessionInfo Engine::Describe(const Session& s) const {
  SessionInfo info;
  info.id = s.id;
  info.num_tokens = s.num_tokens();
  info.num_checkpoints = static_cast<int32_t>(s.ckpts.size());
  info.checkpoint_bytes = info.num_checkpoints * checkpoint_bytes();
  info.state_bytes = state_bytes();
  info.busy = s.busy_with != 0;
  return info;
}

}  // namespace mcserve::engine
