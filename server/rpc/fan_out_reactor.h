// The server side of a Generate stream with n > 1: n completions of one
// one-shot prompt from one prefill. The prompt goes into a scratch session
// once; the session is forked n - 1 times (the forks share its checkpoints);
// completion i is sampled from fork i with seed + i, so it equals a one-shot
// request with that seed. Every response message names its completion
// (GenerateResponse.index); the stream ends when all n have. The scratch
// sessions count against the caller's session quota while the stream runs
// and are deleted when it ends.
//
// Every step is an engine callback (no thread blocks): create, prefill,
// forks one after another, then the n requests. Lifetime and writes as in
// GenerateReactor: reference-counted (gRPC until OnDone, each engine channel
// until the engine lets go), one write in flight, exactly one Finish.
#ifndef MCSERVE_SERVER_RPC_FAN_OUT_REACTOR_H_
#define MCSERVE_SERVER_RPC_FAN_OUT_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "mcserve/v1/generation.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/rpc/caller_scope.h"
#include "server/rpc/validation.h"

namespace mcserve::rpc {

// Most completions one Generate may ask for.
inline constexpr uint32_t kMaxCompletions = 16;

class FanOutReactor : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // `request` has n > 1; validated here (bad input finishes at once).
  FanOutReactor(engine::Engine* engine, const RequestLimits& limits, const CallerScope& scope,
                const v1::GenerateRequest& request, uint64_t random_seed, uint64_t random_id,
                std::atomic<int>* open_streams);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref();

  // Engine thread: the prefill's update, and completion i's.
  void PrefillUpdate(engine::GenerateUpdate u);
  void Deliver(int index, engine::GenerateUpdate u);

 private:
  ~FanOutReactor() override;
  void Fork(int next);  // forks the scratch session for completions next.. n-1
  void StartCompletions();
  void Fail(const absl::Status& s);
  // Records a scratch session; false when the stream is over or cancelled
  // (after OnDone the session is deleted at once).
  bool AddSession(const std::string& id);
  void Pump();

  engine::Engine* const engine_;
  std::atomic<int>* const open_streams_;
  const CallerScope scope_;
  const RequestLimits limits_;
  std::string request_id_;  // as the client sees it
  engine::NewRequest request_;
  int n_ = 0;
  std::atomic<int> refs_{1};

  absl::Mutex mu_;
  std::vector<std::string> sessions_ ABSL_GUARDED_BY(mu_);  // scratch, engine ids
  std::vector<uint64_t> handles_ ABSL_GUARDED_BY(mu_);
  uint32_t prompt_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<engine::TokenOut> prompt_logprobs_ ABSL_GUARDED_BY(mu_);  // the prefill's
  int finished_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;                         // OnDone ran
  std::deque<v1::GenerateResponse> pending_ ABSL_GUARDED_BY(mu_);  // not yet written
  std::optional<grpc::Status> final_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  v1::GenerateResponse in_flight_;
};

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_FAN_OUT_REACTOR_H_
