#include "server/engine/scheduler.h"

#include <algorithm>

namespace mcserve::engine {

void Scheduler::Enqueue(RequestId id, int64_t prefill_tokens) {
  waiting_.push_back(id);
  prefill_left_[id] = prefill_tokens;
}

void Scheduler::AddPrefill(RequestId id, int64_t tokens) {
  auto it = prefill_left_.find(id);
  if (it != prefill_left_.end()) it->second += tokens;
}

void Scheduler::Remove(RequestId id) {
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), id), waiting_.end());
  running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
  prefill_left_.erase(id);
}

bool Scheduler::IsRunning(RequestId id) const {
  return std::find(running_.begin(), running_.end(), id) != running_.end();
}

StepPlan Scheduler::Schedule() {
  StepPlan plan;
  int64_t budget = options_.prefill_tokens_per_step;
  auto plan_one = [&](RequestId id) {
    const int64_t left = prefill_left_[id];
    int64_t take = 0;
    if (left > 0 && budget > 0) {
      take = std::min(left, budget);
      budget -= take;
      plan.prefills.push_back({id, take});
    }
    if (left - take == 0) plan.decodes.push_back(id);
  };
  for (RequestId id : running_) plan_one(id);
  // Admission, in arrival order, while a running slot is free and the
  // request can start: decode-only requests always can, others need prefill
  // budget left this step (a request never overtakes an earlier one).
  while (!waiting_.empty() && static_cast<int32_t>(running_.size()) < options_.max_running) {
    const RequestId id = waiting_.front();
    if (prefill_left_[id] > 0 && budget == 0) break;
    waiting_.pop_front();
    running_.push_back(id);
    plan.admitted.push_back(id);
    plan_one(id);
  }
  return plan;
}

void Scheduler::Update(const StepPlan& plan) {
  for (const PrefillWork& w : plan.prefills) {
    auto it = prefill_left_.find(w.id);
    if (it != prefill_left_.end()) it->second -= w.tokens;
  }
}

}  // namespace mcserve::engine
