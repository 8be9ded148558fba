// The server side of one Generate stream.
//
// The engine thread delivers updates through a StreamChannel; the reactor
// coalesces them into the next response and keeps exactly one write in
// flight. Every path ends in exactly one Finish (normal end, error, client
// cancel, deadline, server shutdown).
//
// Lifetime: reference-counted. gRPC holds one reference until OnDone; the
// engine's StreamChannel holds another until the engine drops the request.
// So the engine never calls into a deleted reactor, and no lock is held
// while calling StartWrite or Finish.
#ifndef MCSERVE_SERVER_RPC_GENERATE_REACTOR_H_
#define MCSERVE_SERVER_RPC_GENERATE_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "mcserve/v1/generation.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/rpc/caller_scope.h"
#include "server/rpc/validation.h"

namespace mcserve::rpc {

class GenerateReactor : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Validates and submits the request; on bad input finishes at once.
  // `random_seed` seeds sampling when the request sets no seed; `random_id`
  // names the request when it has no request_id. `open_streams` counts live
  // reactors (incremented here, decremented when the last reference goes).
  GenerateReactor(engine::Engine* engine, const RequestLimits& limits, const CallerScope& scope,
                  const v1::GenerateRequest& request, uint64_t random_seed, uint64_t random_id,
                  std::atomic<int>* open_streams);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Engine thread: adds an update to the stream.
  void Deliver(engine::GenerateUpdate update);

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref();

 private:
  ~GenerateReactor() override { open_streams_->fetch_sub(1, std::memory_order_acq_rel); }
  // Starts the next write or the Finish, if one is due and none is running.
  void Pump();

  engine::Engine* const engine_;
  std::atomic<int>* const open_streams_;
  uint64_t handle_ = 0;
  std::string request_id_;
  std::atomic<int> refs_{1};

  absl::Mutex mu_;
  std::optional<v1::GenerateResponse> next_ ABSL_GUARDED_BY(mu_);  // coalesced, not yet written
  std::optional<grpc::Status> final_ ABSL_GUARDED_BY(mu_);         // Finish after next_ is written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  v1::GenerateResponse in_flight_;  // owned by the write in flight
};

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_GENERATE_REACTOR_H_
