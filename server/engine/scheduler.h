// Plans engine steps. Pure CPU logic, no model and no clock: Schedule()
// returns what to run this step, Update() applies the work once it ran.
//
// Policy: first come first served. Each step runs one decode token for every
// running request whose prompt is fully fed (including those whose last
// chunk runs in this same step) and prefill chunks, oldest first, within
// prefill_tokens_per_step tokens in all (so a long prompt cannot stall the
// running streams). Waiting requests are admitted in arrival order while
// fewer than max_running run and the step's prefill budget has room for
// their first chunk (a request with nothing to prefill needs none).
// Thread-compatible: used by the engine thread only.
#ifndef MCSERVE_SERVER_ENGINE_SCHEDULER_H_
#define MCSERVE_SERVER_ENGINE_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

namespace mcserve::engine {

using RequestId = uint64_t;

struct SchedulerOptions {
  int32_t max_running = 64;
  int64_t prefill_tokens_per_step = 512;
};

struct PrefillWork {
  RequestId id = 0;
  int64_t tokens = 0;
};

struct StepPlan {
  std::vector<RequestId> admitted;    // moved from waiting to running this step
  std::vector<PrefillWork> prefills;  // in order
  std::vector<RequestId> decodes;     // in admission order
  bool empty() const { return prefills.empty() && decodes.empty(); }
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options) : options_(options) {}

  // Queues a request that must prefill `prefill_tokens` before decoding.
  void Enqueue(RequestId id, int64_t prefill_tokens);
  // Gives a request `tokens` more to prefill (a cached prefix it counted on
  // was gone when it started). It decodes only once they are fed.
  void AddPrefill(RequestId id, int64_t tokens);
  // Forgets a request, waiting or running (finished, cancelled, failed).
  void Remove(RequestId id);

  // Admits waiting requests and plans one step.
  StepPlan Schedule();
  // Records that the plan's prefill chunks ran.
  void Update(const StepPlan& plan);

  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  bool IsRunning(RequestId id) const;

 private:
  SchedulerOptions options_;
  std::deque<RequestId> waiting_;
  std::vector<RequestId> running_;  // admission order
  std::unordered_map<RequestId, int64_t> prefill_left_;
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_SCHEDULER_H_
