// The engine: one thread owns the model and the state store and runs the
// step loop (drain the inbox, ask the scheduler and planner for a step, run
// the model, emit); every public method only posts a command to that thread
// and returns, so gRPC threads never wait on the model. The engine never
// touches a tensor: per-session state lives in the state store
// (server/state), which hands the model its views.
//
// Failures never take the thread down: a LibTorch exception inside a step
// ends the requests of that step with a status (their sessions are marked
// damaged when their state may be half-written), and the loop goes on.
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
#include "server/engine/owner.h"
#include "server/engine/planner.h"
#include "server/engine/request.h"
#include "server/engine/scheduler.h"
#include "server/engine/session.h"
#include "server/engine/session_snapshot.h"
#include "server/engine/session_table.h"
#include "server/metrics/metrics.h"
#include "server/model/mc_model.h"
#include "server/model/sampler.h"
#include "server/pool/eviction.h"
#include "server/state/state_store.h"
#include "server/tokenizer/tokenizer.h"
#include "server/util/clock.h"
#include "server/util/fault_injector.h"

namespace mcserve::engine {

struct EngineOptions {
  int32_t max_running = 64;    // requests decoding together
  int32_t max_waiting = 1024;  // queued beyond that: RESOURCE_EXHAUSTED
  int64_t prefill_tokens_per_step = 512;
  int32_t max_sessions = 256;                   // persistent sessions
  int64_t checkpoint_pool_bytes = 256ll << 20;  // device tier
  int64_t host_pool_bytes = 0;                  // host tier (offload target)
  pool::LossyPolicy lossy_eviction = pool::LossyPolicy::kNone;
  // Sessions unused this long are deleted; zero: never.
  absl::Duration session_idle_ttl = absl::ZeroDuration();
  int32_t intra_op_threads = 0;  // 0: LibTorch's default
  // Prefix cache budget (state_store.h); 0: off.
  int64_t prefix_cache_bytes = 64ll << 20;
  FaultInjector* faults = nullptr;  // test hook (fault_injector.h); null: none
  // Non-empty: serve with this SentencePiece model (a tokenizer.model) and
  // its own bos/eos instead of the tokenizer the model's config names
  // (model_tokenizer.h).
  std::string tokenizer_model;
  // Per-owner limits (owner.h); null: none.
  OwnerLimitsFn owner_limits;
};

struct SessionInfo {
  std::string id;
  int64_t num_tokens = 0;
  int32_t num_checkpoints = 0;
  int64_t checkpoint_bytes = 0;
  int64_t state_bytes = 0;
  bool busy = false;
  uint64_t version = 0;  // changes whenever the session's history may have
  int32_t checkpoints_on_device = 0;
  int32_t checkpoints_on_host = 0;
  pool::EvictionStats eviction;
  absl::Time last_used;  // created, imported, forked, or a request ended
};

struct EngineStatus {
  int32_t running = 0;
  int32_t waiting = 0;
  int32_t sessions = 0;
  int32_t max_sessions = 0;
  // Checkpoint slots in use and in all, by tier (the names of
  // GetServerStatus's fields).
  int32_t checkpoint_slots_used = 0;  // device tier
  int32_t checkpoint_slots_total = 0;
  int32_t host_checkpoint_slots_used = 0;
  int32_t host_checkpoint_slots_total = 0;
  int32_t checkpoints = 0;      // alive, either tier
  int64_t checkpoint_refs = 0;  // references to them (sessions and the prefix cache)
  int32_t state_slots_used = 0;
  int32_t lossy_sessions = 0;
  pool::PoolCounters evictions;
  state::PrefixStats prefix_cache;
  bool draining = false;
};

class Engine {
 public:
  using SessionCallback = std::function<void(absl::StatusOr<SessionInfo>)>;
  using DoneCallback = std::function<void(absl::Status)>;

  // Takes the model, loads its tokenizer (LoadModelTokenizer: the one its
  // config names, or options.tokenizer_model), allocates the state store
  // and starts the engine thread. `metrics` (optional) must outlive the
  // engine. RESOURCE_EXHAUSTED when the pools do not fit in memory; the
  // tokenizer's NOT_FOUND or INVALID_ARGUMENT when it cannot be loaded.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(std::unique_ptr<model::McModel> model,
                                                        const EngineOptions& options, Clock* clock,
                                                        metrics::Metrics* metrics = nullptr);
  // Stops the thread; requests still in flight end with kAborted.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Returns the handle Drop takes. Problems (unknown or
  // busy session, duplicate id, full queue, draining) end the stream with a
  // status.
  uint64_t Submit(NewRequest request);
  // The RPC went away (client cancel, deadline): drop the request without
  // sending anything more on its stream.
  void Drop(uint64_t handle);
  // Ends the in-flight request with this request_id: its stream gets a last
  // message with finish reason CANCELLED.
  void Cancel(std::string request_id, DoneCallback done);

  void CreateSession(std::string session_id, SessionCallback done);
  void GetSession(std::string session_id, SessionCallback done);
  void DeleteSession(std::string session_id, DoneCallback done);
  // A new session `child_id` ("": generated) continuing from `parent_id`'s
  // history: it shares the parent's checkpoints and online state until one
  // of them writes (copy on write). FAILED_PRECONDITION while the parent
  // has a request in flight.
  void ForkSession(std::string parent_id, std::string child_id, SessionCallback done);
  // The session as snapshot bytes (session_snapshot.h).
  void ExportSession(std::string session_id, std::function<void(absl::StatusOr<std::string>)> done);
  // Creates session `session_id` ("": the snapshot's id; "<owner>/": the
  // snapshot's name under that owner, owner.h) from snapshot bytes. Nothing is created unless the
  // whole snapshot is valid and fits.
  // Decodes `bytes` on the calling thread, then as below.
  void ImportSession(std::string session_id, std::string bytes, SessionCallback done);
  // The same from a decoded snapshot (SnapshotDecoder: a stream decoded as
  // it arrives).
  void ImportSession(std::string session_id, SessionSnapshot snapshot, SessionCallback done);

  // Ids of all sessions.
  void ListSessions(std::function<void(std::vector<std::string>)> done);
  // Every session, described, in id order.
  void DescribeSessions(std::function<void(std::vector<SessionInfo>)> done);

  // From now on new requests and sessions are refused with UNAVAILABLE.
  void StartDrain();
  // Ends every request in flight: each stream gets a last message with
  // finish reason ABORTED (shutdown).
  void AbortAll();
  // Thread-safe snapshot, refreshed after every loop iteration (may lag a
  // command that just answered).
  EngineStatus Status() const;
  // The status as of now, after every command posted before this one.
  void GetStatus(std::function<void(EngineStatus)> done);

  // Recounts every reference the state store holds, as of now (the engine
  // also does this whenever it goes idle, logging a mismatch as an error).
  void AuditState(DoneCallback done);

  const model::McModel& model() const { return *model_; }
  // Immutable and thread-safe: gRPC threads encode and decode with it.
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t checkpoint_bytes() const { return model_->checkpoint_bytes(); }
  int64_t state_bytes() const { return model_->state_bytes(); }

 private:
  struct Active;
  using Command = std::function<void()>;

  Engine(std::unique_ptr<model::McModel> model, std::unique_ptr<const tokenizer::Tokenizer> tok,
         std::unique_ptr<state::StateStore> store, const EngineOptions& options, Clock* clock,
         metrics::Metrics* metrics);
  void Post(Command c);
  void Loop();
  void PublishStatus();
  EngineStatus ComputeStatus() const;

  // Engine-thread work (engine.cc, engine_step.cc, engine_sessions.cc).
  void DoSubmit(uint64_t handle, NewRequest request);
  void AbortAllNow();
  // Runs `f`; an exception escaping it fails every request in `ids` (their
  // sessions marked damaged) instead of ending the thread.
  template <typename F>
  void Contain(absl::string_view what, const std::vector<RequestId>& ids, F&& f);
  void Step();
  void Admit(Active& a);
  absl::Status StartFromPrefix(Active& a);
  absl::Status RunPrefill(Active& a, int64_t tokens);
  void RunDecode(const std::vector<Active*>& batch);
  void RunDecodeGroup(const std::vector<Active*>& group);
  void Emit(Active& a, const float* logits);
  // Moves the prompt's log-probabilities, when gathered, into `u` (the
  // request's first update).
  static void TakePromptLogprobs(Active& a, GenerateUpdate& u);
  void Finish(Active& a, FinishReason reason, GenerateUpdate u = {});
  void Fail(Active& a, absl::Status status);
  // Frees the request's slot; its session was last used at `done`, taken
  // before the final message went out so that no client sees a later time.
  void Release(Active& a, absl::Time done);
  void RecordEnd(const Active& a, absl::string_view reason);
  // The request is ending: records in its session whether the history has
  // produced text yet (Session::text_at_start).
  void KeepTextState(Active& a);
  // The session just fed `tokens`: extends its token chain and publishes
  // each boundary it reached, or (exact_from >= 0) only those in
  // (exact_from, exact_to].
  void Advance(Session& s, absl::Span<const int32_t> tokens, int64_t exact_from = -1,
               int64_t exact_to = -1);
  MemoryShape Shape() const;
  // Tells the store whether `s` runs and when it was last used (eviction).
  void Touch(Session& s);
  static std::string OwnerName(const Active& a);
  void ExpireIdleSessions();
  void AuditWhenIdle();
  // A new session in the table (UNAVAILABLE while draining,
  // RESOURCE_EXHAUSTED over its owner's session quota).
  absl::StatusOr<Session*> AddSession(std::string id);

  // Quotas (engine_quota.cc, owner.h).
  struct OwnerUsage {
    int32_t sessions = 0;
    int32_t requests = 0;
    int64_t checkpoint_bytes = 0;  // held by idle sessions + reserved by requests
  };
  OwnerUsage UsageOf(absl::string_view owner) const;
  absl::Status CheckSessionQuota(absl::string_view owner) const;
  // Sets the request's checkpoint reservation; RESOURCE_EXHAUSTED naming
  // the quota when its owner may not run it now.
  absl::Status ReserveQuota(Active& a);
  SessionInfo Describe(const Session& s) const;
  Active* FindByRequestId(const std::string& request_id);

  // Snapshots (engine_snapshot.cc).
  static uint64_t ComputeFingerprint(const model::McModel& m);
  SessionSnapshot Snapshot(const Session& s) const;
  absl::Status CheckSnapshot(const SessionSnapshot& snap) const;
  // Creates a session from a snapshot, or nothing.
  absl::StatusOr<Session*> RestoreSession(const std::string& id, SessionSnapshot snapshot);

  std::unique_ptr<model::McModel> model_;
  const EngineOptions options_;
  Clock* const clock_;
  metrics::Metrics* const metrics_;  // may be null
  const std::unique_ptr<const tokenizer::Tokenizer> tokenizer_;
  const uint64_t fingerprint_;  // of the model, stamped on snapshots

  // Engine-thread state.
  std::unique_ptr<state::StateStore> store_;
  Scheduler scheduler_;
  SessionTable sessions_;
  std::unordered_map<RequestId, std::unique_ptr<Active>> active_;
  std::unordered_map<std::string, RequestId> by_request_id_;
  bool draining_ = false;
  absl::Time next_expiry_check_ = absl::InfinitePast();
  bool reverse_groups_ = false;  // decode group order alternates (RunDecode)
  bool audited_ = true;          // since the engine last did work
  uint64_t last_version_ = 0;    // Session::version, engine-wide

  mutable absl::Mutex mu_;
  std::deque<Command> inbox_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  EngineStatus status_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> next_handle_{1};
  std::thread thread_;
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_ENGINE_H_
