#include "server/http/completion_runs.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/util/status_macros.h"

namespace mcserve::http {
namespace {

// An engine call with a session callback, waited for.
absl::StatusOr<engine::SessionInfo> Await(
    const std::function<void(engine::Engine::SessionCallback)>& call) {
  absl::Notification done;
  absl::StatusOr<engine::SessionInfo> out = absl::UnknownError("no answer");
  call([&](absl::StatusOr<engine::SessionInfo> r) {
    out = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<CompletionRuns>> CompletionRuns::Start(
    engine::Engine* engine, const rpc::CallerScope& scope, const rpc::RequestLimits& limits,
    engine::NewRequest request, int32_t n, const std::string& id) {
  if (n < 1) return absl::InvalidArgumentError(absl::StrCat("n must be at least 1, got ", n));
  if (n > kMaxCompletions) {
    return absl::InvalidArgumentError(
        absl::StrCat("n must be at most ", kMaxCompletions, ", got ", n));
  }
  if (n > 1 && !request.session_id.empty()) {
    return absl::InvalidArgumentError(
        "n > 1 needs a one-shot request: drop session_id (or fork the session and send one "
        "request per fork)");
  }
  std::shared_ptr<CompletionRuns> runs(new CompletionRuns(engine));
  std::vector<engine::NewRequest> requests;
  if (n == 1) {
    request.request_id = scope.OwnRequest(id);
    requests.push_back(std::move(request));
  } else {
    RETURN_IF_ERROR(runs->Prefill(scope, limits, request, n, id));
    for (int32_t i = 0; i < n; ++i) {
      engine::NewRequest r = request;
      r.prompt.clear();
      r.params.prompt_logprobs = -1;  // the prefill scored the prompt
      r.session_id = runs->scratch_[i];
      r.params.seed = request.params.seed + static_cast<uint64_t>(i);
      r.request_id = scope.OwnRequest(absl::StrCat(id, "-", i));
      requests.push_back(std::move(r));
    }
  }
  runs->runs_.resize(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].channel = runs->updates_->Channel(static_cast<int>(i));
    runs->runs_[i].handle = engine->Submit(std::move(requests[i]));
  }
  for (size_t i = 0; i < runs->runs_.size(); ++i) {
    engine::GenerateUpdate first = runs->Take(i);
    if (!first.status.ok()) return first.status;  // the destructor drops the others
    runs->runs_[i].finished = false;              // not yet used by the caller
    runs->runs_[i].backlog.push_front(std::move(first));
  }
  return runs;
}

absl::Status CompletionRuns::Prefill(const rpc::CallerScope& scope,
                                     const rpc::RequestLimits& limits,
                                     const engine::NewRequest& request, int32_t n,
                                     const std::string& id) {
  ASSIGN_OR_RETURN(std::string root, scope.NewSession("", limits, "session_id"));
  ASSIGN_OR_RETURN(engine::SessionInfo made, Await([&](engine::Engine::SessionCallback cb) {
                     engine_->CreateSession(root, std::move(cb));
                   }));
  scratch_.push_back(made.id);
  engine::NewRequest prefill = request;
  prefill.session_id = made.id;
  prefill.params.max_tokens = 0;
  prefill.params.min_tokens = 0;
  prefill.request_id = scope.OwnRequest(id + "-prefill");
  auto q = std::make_shared<UpdateQueue>();
  prefill.channel = q->Channel(0);
  engine_->Submit(std::move(prefill));
  for (engine::GenerateUpdate u = q->Pop().update;; u = q->Pop().update) {
    RETURN_IF_ERROR(u.status);
    if (u.finished && u.reason != engine::FinishReason::kLength) {
      // Aborted or cancelled: the prompt is not (all) in the session.
      return absl::AbortedError("the shared prefill of the n completions was cut short");
    }
    if (u.finished) {
      prompt_tokens_ = u.usage.prompt_tokens;
      prompt_logprobs_ = std::move(u.prompt_logprobs);
      break;
    }
  }
  for (int32_t i = 1; i < n; ++i) {
    ASSIGN_OR_RETURN(std::string child, scope.NewSession("", limits, "session_id"));
    ASSIGN_OR_RETURN(engine::SessionInfo fork, Await([&](engine::Engine::SessionCallback cb) {
                       engine_->ForkSession(made.id, child, std::move(cb));
                     }));
    scratch_.push_back(fork.id);
  }
  return absl::OkStatus();
}

CompletionRuns::~CompletionRuns() {
  DropAll();
  for (const std::string& id : scratch_) engine_->DeleteSession(id, [](absl::Status) {});
}

engine::GenerateUpdate CompletionRuns::Take(size_t index) {
  while (runs_[index].backlog.empty()) {
    UpdateQueue::Item item = updates_->Pop();
    runs_[item.index].backlog.push_back(std::move(item.update));
  }
  engine::GenerateUpdate u = std::move(runs_[index].backlog.front());
  runs_[index].backlog.pop_front();
  if (u.finished || !u.status.ok()) runs_[index].finished = true;
  return u;
}

engine::GenerateUpdate CompletionRuns::Next(size_t index) { return Take(index); }

std::pair<size_t, engine::GenerateUpdate> CompletionRuns::NextAny() {
  for (size_t i = 0; i < runs_.size(); ++i) {
    if (!runs_[i].backlog.empty()) return {i, Take(i)};
  }
  UpdateQueue::Item item = updates_->Pop();
  const size_t i = static_cast<size_t>(item.index);
  runs_[i].backlog.push_back(std::move(item.update));
  return {i, Take(i)};
}

bool CompletionRuns::all_finished() const {
  for (const Run& r : runs_) {
    if (!r.finished || !r.backlog.empty()) return false;
  }
  return true;
}

void CompletionRuns::DropAll() {
  for (Run& r : runs_) {
    if (!r.finished) engine_->Drop(r.handle);
    r.finished = true;
  }
}

}  // namespace mcserve::http
