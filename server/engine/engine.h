// The engine: one thread owns the model and the MC state pools and runs the
// step loop; every public method only posts a command to that thread and
// returns, so gRPC threads never wait on the model.
//
// Commands answer through callbacks (session and abort calls) or through the
// request's StreamChannel (Generate); both run on the engine thread and must
// not block.
#ifndef MCSERVE_SERVER_ENGINE_ENGINE_H_
#define MCSERVE_SERVER_ENGINE_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/output_processor.h"
#include "server/engine/request.h"
#include "server/engine/scheduler.h"
#include "server/engine/session.h"
#include "server/engine/slot_allocator.h"
#include "server/model/mc_model.h"
#include "server/model/sampler.h"
#include "server/util/clock.h"

namespace mcserve::engine {

struct EngineOptions {
  int32_t max_running = 64;    // requests decoding together
  int32_t max_waiting = 1024;  // queued beyond that: RESOURCE_EXHAUSTED
  int64_t prefill_tokens_per_step = 512;
  int32_t max_sessions = 256;  // persistent sessions
  int64_t checkpoint_pool_bytes = 256ll << 20;
  int32_t intra_op_threads = 0;  // 0: LibTorch's default
};

struct SessionInfo {
  std::string id;
  int64_t num_tokens = 0;
  int32_t num_checkpoints = 0;
  int64_t checkpoint_bytes = 0;
  int64_t state_bytes = 0;
  bool busy = false;
};

struct EngineStatus {
  int32_t running = 0;
  int32_t waiting = 0;
  int32_t sessions = 0;
  int32_t max_sessions = 0;
  int32_t ckpt_slots_used = 0;
  int32_t ckpt_slots_total = 0;
  bool draining = false;
};

class Engine {
 public:
  using SessionCallback = std::function<void(absl::StatusOr<SessionInfo>)>;
  using DoneCallback = std::function<void(absl::Status)>;

  // Takes the model, allocates the pools and starts the engine thread.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(std::unique_ptr<model::McModel> model,
                                                        const EngineOptions& options, Clock* clock);
  // Stops the thread; requests still in flight end with kAborted.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Returns the handle Cancel takes. Problems (unknown or
  // busy session, duplicate id, full queue, draining) end the stream with a
  // status.
  uint64_t Submit(NewRequest request);
  // The RPC went away (client cancel, deadline): drop the request quietly.
  void Cancel(uint64_t handle);
  // Ends the in-flight request with this request_id (finish reason CANCELLED).
  void Abort(std::string request_id, DoneCallback done);

  void CreateSession(std::string session_id, SessionCallback done);
  void GetSession(std::string session_id, SessionCallback done);
  void DeleteSession(std::string session_id, DoneCallback done);

  // From now on new requests and sessions are refused with UNAVAILABLE.
  void StartDrain();
  // Ends every request in flight with finish reason ABORTED.
  void AbortAll();
  // Thread-safe snapshot, refreshed after every command and step.
  EngineStatus Status() const;

  const model::McModel& model() const { return *model_; }
  int64_t checkpoint_bytes() const;
  int64_t state_bytes() const;

 private:
  struct Active;
  using Command = std::function<void()>;

  Engine(std::unique_ptr<model::McModel> model, const EngineOptions& options, Clock* clock);
  void Post(Command c);
  void Loop();
  void PublishStatus();

  // Engine-thread work (engine.cc, engine_step.cc, engine_sessions.cc).
  void DoSubmit(uint64_t handle, NewRequest request);
  void AbortAllNow();
  void Step();
  void Admit(Active& a);
  absl::Status RunPrefill(Active& a, int64_t tokens);
  void RunDecode(const std::vector<Active*>& batch);
  void Emit(Active& a, const float* logits);
  void Finish(Active& a, FinishReason reason, GenerateUpdate u = {});
  void Fail(Active& a, absl::Status status);
  void Release(Active& a);
  absl::StatusOr<std::vector<int32_t>> AllocateCheckpoints(int64_t n);
  absl::Status NewSessionState(Session& s);
  void FreeSessionState(Session& s);
  SessionInfo Describe(const Session& s) const;
  Active* FindByRequestId(const std::string& request_id);

  std::unique_ptr<model::McModel> model_;
  const EngineOptions options_;
  Clock* const clock_;
  const model::ByteTokenizer tokenizer_;

  // Engine-thread state.
  model::CacheTensors cache_;
  SlotAllocator state_slots_;
  SlotAllocator ckpt_slots_;
  Scheduler scheduler_;
  std::map<std::string, std::unique_ptr<Session>> sessions_;
  std::unordered_map<RequestId, std::unique_ptr<Active>> active_;
  std::unordered_map<std::string, RequestId> by_request_id_;
  bool draining_ = false;

  mutable absl::Mutex mu_;
  std::deque<Command> inbox_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  EngineStatus status_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> next_handle_{1};
  std::thread thread_;
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_ENGINE_H_
