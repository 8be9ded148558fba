// Engine construction, the command inbox and the loop of the engine thread.
#include "server/engine/engine.h"

#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "server/engine/active_request.h"
#include "server/engine/model_tokenizer.h"
#include "server/util/blas_threads.h"
#include "server/util/log.h"

namespace mcserve::engine {

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(std::unique_ptr<model::McModel> model,
                                                       const EngineOptions& options, Clock* clock,
                                                       metrics::Metrics* metrics) {
  if (options.max_running < 1 || options.max_sessions < 0 || options.max_waiting < 0 ||
      options.prefill_tokens_per_step < 1 || options.prefix_cache_bytes < 0) {
    return absl::InvalidArgumentError(
        "engine limits must be positive (max_running, prefill_tokens_per_step >= 1)");
  }
  absl::StatusOr<std::unique_ptr<const tokenizer::Tokenizer>> tok =
      LoadModelTokenizer(model->config(), options.tokenizer_model);
  if (!tok.ok()) return tok.status();
  state::StoreOptions so;
  // One-shot requests need a state each while running.
  so.max_sequences = options.max_sessions + options.max_running;
  so.checkpoint_pool_bytes = options.checkpoint_pool_bytes;
  so.host_pool_bytes = options.host_pool_bytes;
  so.lossy_eviction = options.lossy_eviction;
  so.prefix_cache_bytes = options.prefix_cache_bytes;
  so.faults = options.faults;
  absl::StatusOr<std::unique_ptr<state::StateStore>> store = state::StateStore::Create(*model, so);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Engine>(
      new Engine(std::move(model), *std::move(tok), *std::move(store), options, clock, metrics));
}

Engine::Engine(std::unique_ptr<model::McModel> model,
               std::unique_ptr<const tokenizer::Tokenizer> tok,
               std::unique_ptr<state::StateStore> store, const EngineOptions& options, Clock* clock,
               metrics::Metrics* metrics)
    : model_(std::move(model)),
      options_(options),
      clock_(clock),
      metrics_(metrics),
      tokenizer_(std::move(tok)),
      fingerprint_(ComputeFingerprint(*model_)),
      store_(std::move(store)),
      scheduler_(SchedulerOptions{options.max_running, options.prefill_tokens_per_step}),
      sessions_(options.max_sessions) {
  const state::StoreStatus st = store_->status();
  MCSERVE_LOG(kInfo, "engine ready")
      .Kv("state_slots", st.state_slots_total)
      .Kv("checkpoint_slots", st.checkpoint_slots_total)
      .Kv("host_checkpoint_slots", st.host_checkpoint_slots_total)
      .Kv("tokenizer", tokenizer_->kind())
      .Kv("lossy_eviction", pool::LossyPolicyName(options_.lossy_eviction))
      .Kv("prefix_cache_bytes", options_.prefix_cache_bytes)
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
  // Sessions hold handles into the store: they go first.
  active_.clear();
  sessions_.Clear();
}

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
    for (Command& c : commands) {
      try {
        c();
      } catch (const std::exception& e) {  // a bug, never expected: keep serving
        MCSERVE_LOG(kError, "engine command failed").Kv("error", e.what());
      }
    }
    if (stop) break;
    ExpireIdleSessions();
    if (scheduler_.HasWork()) {
      Step();
      audited_ = false;
    } else {
      AuditWhenIdle();
    }
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
    g.checkpoint_slots_used = s.checkpoint_slots_used;
    g.host_checkpoint_slots_used = s.host_checkpoint_slots_used;
    g.device_bytes = int64_t{s.checkpoint_slots_used} * checkpoint_bytes();
    g.host_bytes = int64_t{s.host_checkpoint_slots_used} * checkpoint_bytes();
    g.device_capacity_bytes = int64_t{s.checkpoint_slots_total} * checkpoint_bytes();
    g.host_capacity_bytes = int64_t{s.host_checkpoint_slots_total} * checkpoint_bytes();
    g.offloads = s.evictions.offloads;
    g.fetches = s.evictions.fetches;
    g.drops = s.evictions.drops;
    g.merges = s.evictions.merges;
    const state::PrefixStats& p = s.prefix_cache;
    g.prefix_entries_device = p.entries_device + p.entries_state_only;
    g.prefix_entries_host = p.entries_host;
    g.prefix_bytes_device = p.bytes_device;
    g.prefix_bytes_host = p.bytes_host;
    g.prefix_query_tokens = p.query_tokens;
    g.prefix_hit_tokens = p.hit_tokens;
    metrics_->Publish(g);
  }
  absl::MutexLock l(&mu_);
  status_ = s;
}

EngineStatus Engine::ComputeStatus() const {
  EngineStatus s;
  s.running = scheduler_.num_running();
  s.waiting = scheduler_.num_waiting();
  s.sessions = sessions_.size();
  s.max_sessions = options_.max_sessions;
  const state::StoreStatus st = store_->status();
  s.checkpoint_slots_used = st.checkpoint_slots_used;
  s.checkpoint_slots_total = st.checkpoint_slots_total;
  s.host_checkpoint_slots_used = st.host_checkpoint_slots_used;
  s.host_checkpoint_slots_total = st.host_checkpoint_slots_total;
  s.checkpoints = st.checkpoints;
  s.checkpoint_refs = st.checkpoint_refs;
  s.state_slots_used = st.state_slots_used;
  sessions_.ForEach([&](const Session& session) {
    s.lossy_sessions += session.state.valid() && store_->lossy(session.state) ? 1 : 0;
  });
  s.evictions = st.evictions;
  s.prefix_cache = st.prefix;
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

void Engine::Drop(uint64_t handle) {
  Post([this, handle] {
    auto it = active_.find(handle);
    if (it == active_.end()) return;
    MCSERVE_LOG(kDebug, "request cancelled by client").Kv("id", it->second->req.request_id);
    RecordEnd(*it->second, "cancelled");
    Release(*it->second, clock_->Now());
  });
}

void Engine::Cancel(std::string request_id, DoneCallback done) {
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

void Engine::AuditState(DoneCallback done) {
  Post([this, done = std::move(done)] { done(store_->Audit()); });
}

void Engine::AuditWhenIdle() {
  if (audited_) return;
  audited_ = true;
  absl::Status st = store_->Audit();
  if (!st.ok()) {
    MCSERVE_LOG(kError, "state store audit failed").Kv("error", st.ToString());
  }
}

Engine::Active* Engine::FindByRequestId(const std::string& request_id) {
  auto it = by_request_id_.find(request_id);
  if (it == by_request_id_.end()) return nullptr;
  return active_.at(it->second).get();
}

}  // namespace mcserve::engine
