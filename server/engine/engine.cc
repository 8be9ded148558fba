// Engine construction, the command inbox and the loop of the engine thread.
#include "server/engine/engine.h"

#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "server/engine/active_request.h"
#include "server/model/cache_tensors.h"
#include "server/util/blas_threads.h"
#include "server/util/log.h"

namespace mcserve::engine {

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(std::unique_ptr<model::McModel> model,
                                                       const EngineOptions& options, Clock* clock,
                                                       metrics::Metrics* metrics) {
  if (options.max_running < 1 || options.max_sessions < 0 || options.max_waiting < 0 ||
      options.prefill_tokens_per_step < 1) {
    return absl::InvalidArgumentError(
        "engine limits must be positive (max_running, prefill_tokens_per_step >= 1)");
  }
  const model::ModelConfig& c = model->config();
  const int64_t per_ckpt = model::CheckpointBytes(c, model->options().ckpt_dtype);
  if (kernels::KeepsCheckpoints(c.aggregation) && options.checkpoint_pool_bytes < per_ckpt) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint pool of ", options.checkpoint_pool_bytes,
                     " bytes cannot hold one checkpoint (", per_ckpt, " bytes)"));
  }
  return std::unique_ptr<Engine>(new Engine(std::move(model), options, clock, metrics));
}

namespace {

pool::PoolOptions PoolFor(const model::McModel& m, const EngineOptions& o) {
  pool::PoolOptions p;
  p.dtype = model::CkptScalarType(m.options().ckpt_dtype);
  p.device = m.options().device;
  if (!kernels::KeepsCheckpoints(m.config().aggregation)) {
    p.device_slots = 1;  // never used
    return p;
  }
  const int64_t per = model::CheckpointBytes(m.config(), m.options().ckpt_dtype);
  p.device_slots = static_cast<int32_t>(std::min<int64_t>(o.checkpoint_pool_bytes / per, 1 << 30));
  p.host_slots = static_cast<int32_t>(std::min<int64_t>(o.host_pool_bytes / per, 1 << 30));
  return p;
}

}  // namespace

Engine::Engine(std::unique_ptr<model::McModel> model, const EngineOptions& options, Clock* clock,
               metrics::Metrics* metrics)
    : model_(std::move(model)),
      options_(options),
      clock_(clock),
      metrics_(metrics),
      tokenizer_(model_->config().bos_id, model_->config().eos_id),
      fingerprint_(ComputeFingerprint(*model_)),
      pool_(model_->config(), PoolFor(*model_, options)),
      // One-shot requests need a state slot each while running.
      state_slots_(options.max_sessions + options.max_running),
      scheduler_(SchedulerOptions{options.max_running, options.prefill_tokens_per_step}) {
  cache_ = model_->AllocateCache(state_slots_.capacity(), 0);
  cache_.ckpt = pool_.device_states();
  cache_.ckpt_summary = pool_.device_summaries();
  MCSERVE_LOG(kInfo, "engine ready")
      .Kv("state_slots", state_slots_.capacity())
      .Kv("checkpoint_slots", pool_.device_capacity())
      .Kv("host_checkpoint_slots", pool_.host_capacity())
      .Kv("lossy_eviction", pool::LossyPolicyName(options_.lossy_eviction))
      .Kv("checkpoint_bytes", checkpoint_bytes())
      .Kv("state_bytes", state_bytes());
  PublishStatus();
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  thread_.join();
  // Commands posted after the loop ended still get their answers (callbacks
  // must always run, or their RPCs never finish).
  std::deque<Command> late;
  {
    absl::MutexLock l(&mu_);
    late.swap(inbox_);
  }
  draining_ = true;
  for (Command& c : late) c();
  AbortAllNow();
}

int64_t Engine::checkpoint_bytes() const {
  return model::CheckpointBytes(model_->config(), model_->options().ckpt_dtype);
}

int64_t Engine::state_bytes() const { return model::StateBytes(model_->config()); }

void Engine::Post(Command c) {
  absl::MutexLock l(&mu_);
  inbox_.push_back(std::move(c));
}

void Engine::Loop() {
  if (options_.intra_op_threads > 0) {
    at::set_num_threads(options_.intra_op_threads);
    SetBlasThreads(options_.intra_op_threads);
  }
  while (true) {
    std::deque<Command> commands;
    const bool busy = scheduler_.HasWork();
    bool stop = false;
    {
      absl::MutexLock l(&mu_);
      if (!busy) {
        const absl::Condition wake(
            +[](Engine* e)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) { return e->stop_ || !e->inbox_.empty(); },
            this);
        // With an idle TTL, wake now and then to expire sessions.
        if (options_.session_idle_ttl > absl::ZeroDuration()) {
          mu_.AwaitWithTimeout(wake, absl::Seconds(1));
        } else {
          mu_.Await(wake);
        }
      }
      commands.swap(inbox_);
      stop = stop_;
    }
    for (Command& c : commands) c();
    if (stop) break;
    ExpireIdleSessions();
    if (scheduler_.HasWork()) Step();
    PublishStatus();
  }
  AbortAllNow();
}

void Engine::GetStatus(std::function<void(EngineStatus)> done) {
  Post([this, done = std::move(done)] { done(ComputeStatus()); });
}

void Engine::PublishStatus() {
  const EngineStatus s = ComputeStatus();
  if (metrics_ != nullptr) {
    metrics::EngineGauges g;
    g.running = s.running;
    g.waiting = s.waiting;
    g.sessions = s.sessions;
    g.lossy_sessions = s.lossy_sessions;
    g.device_checkpoints = s.ckpt_slots_used;
    g.host_checkpoints = s.host_slots_used;
    g.device_bytes = int64_t{s.ckpt_slots_used} * checkpoint_bytes();
    g.host_bytes = int64_t{s.host_slots_used} * checkpoint_bytes();
    g.device_capacity_bytes = int64_t{s.ckpt_slots_total} * checkpoint_bytes();
    g.host_capacity_bytes = int64_t{s.host_slots_total} * checkpoint_bytes();
    g.offloads = s.evictions.offloads;
    g.fetches = s.evictions.fetches;
    g.drops = s.evictions.drops;
    g.merges = s.evictions.merges;
    metrics_->Publish(g);
  }
  absl::MutexLock l(&mu_);
  status_ = s;
}

EngineStatus Engine::ComputeStatus() const {
  EngineStatus s;
  s.running = scheduler_.num_running();
  s.waiting = scheduler_.num_waiting();
  s.sessions = static_cast<int32_t>(sessions_.size());
  s.max_sessions = options_.max_sessions;
  if (kernels::KeepsCheckpoints(model_->config().aggregation)) {
    s.ckpt_slots_used = pool_.device_used();
    s.ckpt_slots_total = pool_.device_capacity();
    s.host_slots_used = pool_.host_used();
    s.host_slots_total = pool_.host_capacity();
  }
  s.checkpoints = pool_.live();
  s.checkpoint_refs = pool_.total_refs();
  s.state_slots_used = state_slots_.used();
  for (const auto& [id, session] : sessions_) s.lossy_sessions += session->eviction.lossy ? 1 : 0;
  s.evictions = pool_.counters();
  s.draining = draining_;
  return s;
}

EngineStatus Engine::Status() const {
  absl::MutexLock l(&mu_);
  return status_;
}

uint64_t Engine::Submit(NewRequest request) {
  const uint64_t handle = next_handle_.fetch_add(1);
  Post([this, handle, r = std::move(request)]() mutable { DoSubmit(handle, std::move(r)); });
  return handle;
}

void Engine::Cancel(uint64_t handle) {
  Post([this, handle] {
    auto it = active_.find(handle);
    if (it == active_.end()) return;
    MCSERVE_LOG(kDebug, "request cancelled by client").Kv("id", it->second->req.request_id);
    RecordEnd(*it->second, "cancelled");
    Release(*it->second);
  });
}

void Engine::Abort(std::string request_id, DoneCallback done) {
  Post([this, id = std::move(request_id), done = std::move(done)] {
    Active* a = FindByRequestId(id);
    if (a == nullptr) {
      done(absl::NotFoundError(absl::StrCat("no request '", id, "' in flight")));
      return;
    }
    Finish(*a, FinishReason::kCancelled);
    done(absl::OkStatus());
  });
}

void Engine::StartDrain() {
  Post([this] { draining_ = true; });
}

void Engine::AbortAll() {
  Post([this] { AbortAllNow(); });
}

void Engine::AbortAllNow() {
  std::vector<RequestId> ids;
  for (const auto& [id, a] : active_) ids.push_back(id);
  for (RequestId id : ids) {
    auto it = active_.find(id);
    if (it != active_.end()) Finish(*it->second, FinishReason::kAborted);
  }
}

Engine::Active* Engine::FindByRequestId(const std::string& request_id) {
  auto it = by_request_id_.find(request_id);
  if (it == by_request_id_.end()) return nullptr;
  return active_.at(it->second).get();
}

}  // namespace mcserve::engine
