#include "server/engine/scheduler.h"

#include <gtest/gtest.h>

namespace mcserve::engine {
namespace {

std::vector<RequestId> Ids(const std::vector<PrefillWork>& w) {
  std::vector<RequestId> ids;
  for (const auto& x : w) ids.push_back(x.id);
  return ids;
}

TEST(SchedulerTest, AdmitsFirstComeFirstServedUpToMaxRunning) {
  Scheduler s({/*max_running=*/2, /*prefill_tokens_per_step=*/100});
  s.Enqueue(1, 0);
  s.Enqueue(2, 0);
  s.Enqueue(3, 0);
  StepPlan p = s.Schedule();
  EXPECT_EQ(p.admitted, (std::vector<RequestId>{1, 2}));
  EXPECT_EQ(p.decodes, (std::vector<RequestId>{1, 2}));
  EXPECT_EQ(s.num_waiting(), 1);
  s.Update(p);
  s.Remove(1);
  p = s.Schedule();
  EXPECT_EQ(p.admitted, (std::vector<RequestId>{3}));
  EXPECT_EQ(p.decodes, (std::vector<RequestId>{2, 3}));
}

TEST(SchedulerTest, LongPromptIsChunkedWithinTheTokenBudget) {
  Scheduler s({4, /*prefill_tokens_per_step=*/10});
  s.Enqueue(1, 0);   // already decoding
  s.Enqueue(2, 25);  // long prompt
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.prefills.size(), 1u);
  EXPECT_EQ(p.prefills[0].tokens, 10);
  EXPECT_EQ(p.decodes, (std::vector<RequestId>{1}));  // the stream keeps going
  s.Update(p);
  p = s.Schedule();
  EXPECT_EQ(p.prefills[0].tokens, 10);
  s.Update(p);
  p = s.Schedule();
  EXPECT_EQ(p.prefills[0].tokens, 5);
  // The last chunk and the first decode share a step.
  EXPECT_EQ(p.decodes, (std::vector<RequestId>{1, 2}));
}

TEST(SchedulerTest, BudgetIsSharedOldestFirst) {
  Scheduler s({4, 10});
  s.Enqueue(1, 7);
  s.Enqueue(2, 7);
  StepPlan p = s.Schedule();
  ASSERT_EQ(p.prefills.size(), 2u);
  EXPECT_EQ(p.prefills[0].tokens, 7);
  EXPECT_EQ(p.prefills[1].tokens, 3);
  EXPECT_EQ(p.decodes, (std::vector<RequestId>{1}));
}

TEST(SchedulerTest, PlanningDoesNotConsumeUntilUpdate) {
  Scheduler s({4, 10});
  s.Enqueue(1, 5);
  EXPECT_EQ(s.Schedule().prefills[0].tokens, 5);
  EXPECT_EQ(s.Schedule().prefills[0].tokens, 5);  // not applied yet
}

TEST(SchedulerTest, RemovedRequestsDisappearFromPlans) {
  Scheduler s({4, 10});
  s.Enqueue(1, 0);
  s.Enqueue(2, 20);
  s.Remove(2);
  StepPlan p = s.Schedule();
  EXPECT_TRUE(Ids(p.prefills).empty());
  EXPECT_EQ(p.decodes, (std::vector<RequestId>{1}));
  s.Remove(1);
  EXPECT_FALSE(s.HasWork());
}

}  // namespace
}  // namespace mcserve::engine
