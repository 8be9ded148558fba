// The engine side of one HTTP completion request (/v1/completions or
// /v1/chat/completions): its n completions started and their updates taken,
// per completion in order. n > 1 completions of a one-shot prompt cost one
// prefill: the prompt goes into a scratch session once, which is forked
// n - 1 times (the forks share its checkpoints), and completion i is sampled
// from fork i with seed + i (equal to a one-shot run with that seed). The
// scratch sessions are deleted, and unfinished completions dropped, when the
// runs are destroyed (the response is done or, for a streamed response, the
// client went away: httplib 0.11 tells a handler of a lost client only
// through a failed write, so a response that is not streamed runs to its
// end, bounded by --max_tokens_limit).
//
// Blocking: a connection thread waits here; the engine thread never does.
#ifndef MCSERVE_SERVER_HTTP_COMPLETION_RUNS_H_
#define MCSERVE_SERVER_HTTP_COMPLETION_RUNS_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/engine/engine.h"
#include "server/http/update_queue.h"
#include "server/rpc/caller_scope.h"
#include "server/rpc/validation.h"

namespace mcserve::http {

// Most completions of one request (n).
inline constexpr int32_t kMaxCompletions = 16;

class CompletionRuns {
 public:
  // Starts `n` completions of `request` (validated; its request_id and
  // channel are set here, from `id`) and waits for each one's first update:
  // an unknown or busy session, a full queue or a quota is an error here,
  // before anything is sent to the client. n > 1 needs a one-shot request.
  static absl::StatusOr<std::shared_ptr<CompletionRuns>> Start(engine::Engine* engine,
                                                               const rpc::CallerScope& scope,
                                                               const rpc::RequestLimits& limits,
                                                               engine::NewRequest request,
                                                               int32_t n, const std::string& id);
  ~CompletionRuns();
  CompletionRuns(const CompletionRuns&) = delete;
  CompletionRuns& operator=(const CompletionRuns&) = delete;

  size_t size() const { return runs_.size(); }
  // Completion `index`'s next update (others' that come first wait).
  engine::GenerateUpdate Next(size_t index);
  // The next update of any unfinished completion, with its index.
  std::pair<size_t, engine::GenerateUpdate> NextAny();
  // Every completion has sent its last update (finished or failed).
  bool all_finished() const;
  // Ends the unfinished completions (after an error in one of them).
  void DropAll();

  // n > 1: the one prefill's prompt tokens (with BOS) and, when asked, its
  // prompt log-probabilities; n = 1: -1 and none (they come in the
  // completion's own updates).
  int32_t shared_prompt_tokens() const { return prompt_tokens_; }
  const std::vector<engine::TokenOut>& shared_prompt_logprobs() const { return prompt_logprobs_; }

 private:
  struct Run {
    uint64_t handle = 0;
    std::deque<engine::GenerateUpdate> backlog;  // taken from the queue, not yet used
    bool finished = false;
  };
  explicit CompletionRuns(engine::Engine* engine) : engine_(engine) {}
  absl::Status Prefill(const rpc::CallerScope& scope, const rpc::RequestLimits& limits,
                       const engine::NewRequest& request, int32_t n, const std::string& id);
  engine::GenerateUpdate Take(size_t index);

  engine::Engine* const engine_;
  std::vector<std::string> scratch_;  // n > 1: the prefilled session, then its forks
  std::vector<Run> runs_;
  std::shared_ptr<UpdateQueue> updates_ = std::make_shared<UpdateQueue>();
  int32_t prompt_tokens_ = -1;
  std::vector<engine::TokenOut> prompt_logprobs_;
};

}  // namespace mcserve::http

#endif  // MCSERVE_SERVER_HTTP_COMPLETION_RUNS_H_
