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

TEST(SchedulerTest, AdmissionWaitsForPrefillBudget) {
  Scheduler s({8, 10});
  s.Enqueue(1, 10);  // takes the whole budget
  s.Enqueue(2, 5);
  s.Enqueue(3, 0);  // behind 2: first come first served
  StepPlan p = s.Schedule();
  EXPECT_EQ(p.admitted, (std::vector<RequestId>{1}));
  EXPECT_EQ(s.num_waiting(), 2);
  s.Update(p);
  p = s.Schedule();  // 1 is fed: budget for 2, and 3 needs none
  EXPECT_EQ(p.admitted, (std::vector<RequestId>{2, 3}));
  EXPECT_EQ(p.decodes, (std::vector<RequestId>{1, 2, 3}));
}

TEST(SchedulerTest, RunningStreamsDecodeEveryStepWhileALongPromptPrefills) {
  Scheduler s({4, /*prefill_tokens_per_step=*/8});
  s.Enqueue(1, 0);
  s.Enqueue(2, 0);
  s.Enqueue(3, 100);
  for (int step = 0; step < 5; ++step) {
    StepPlan p = s.Schedule();
    EXPECT_EQ(p.decodes, (std::vector<RequestId>{1, 2})) << step;
    ASSERT_EQ(p.prefills.size(), 1u);
    EXPECT_EQ(p.prefills[0].tokens, 8);
    s.Update(p);
  }
}

TEST(SchedulerTest, WaitingRequestsAreAdmittedInArrivalOrderAsSlotsFree) {
  Scheduler s({2, 100});
  for (RequestId id = 1; id <= 5; ++id) s.Enqueue(id, 0);
  std::vector<RequestId> admitted;
  for (int step = 0; step < 5 && s.HasWork(); ++step) {
    StepPlan p = s.Schedule();
    admitted.insert(admitted.end(), p.admitted.begin(), p.admitted.end());
    s.Update(p);
    s.Remove(p.decodes.front());  // the oldest running request finishes
  }
  EXPECT_EQ(admitted, (std::vector<RequestId>{1, 2, 3, 4, 5}));
}

TEST(SchedulerTest, CancellingAPrefillGivesItsBudgetToTheNextRequest) {
  Scheduler s({4, 10});
  s.Enqueue(1, 30);
  s.Enqueue(2, 30);
  StepPlan p = s.Schedule();
  EXPECT_EQ(Ids(p.prefills), (std::vector<RequestId>{1}));
  s.Update(p);
  // Cancelled between steps: the next plan never mentions it.
  s.Remove(1);
  p = s.Schedule();
  EXPECT_EQ(Ids(p.prefills), (std::vector<RequestId>{2}));
  EXPECT_EQ(p.prefills[0].tokens, 10);
  EXPECT_FALSE(s.IsRunning(1));
}

TEST(SchedulerTest, CancellingAWaitingRequestKeepsTheOthersInOrder) {
  Scheduler s({1, 10});
  s.Enqueue(1, 0);
  s.Enqueue(2, 0);
  s.Enqueue(3, 0);
  s.Update(s.Schedule());
  s.Remove(2);  // still waiting
  s.Remove(1);
  StepPlan p = s.Schedule();
  EXPECT_EQ(p.admitted, (std::vector<RequestId>{3}));
  EXPECT_EQ(s.num_waiting(), 0);
}

}  // namespace
}  // namespace mcserve::engine
