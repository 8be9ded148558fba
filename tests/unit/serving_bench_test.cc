// The serving benchmark's workload and report (bench/serving): a seed gives
// the same traffic; lengths, shares and arrivals follow the options;
// percentiles interpolate as numpy's do.
#include <gtest/gtest.h>

#include <cmath>

#include "bench/serving/report.h"
#include "bench/serving/workload.h"

namespace mcserve::bench {
namespace {

TEST(ServingWorkloadTest, ASeedGivesTheSameTrafficAndTheOptionsShapeIt) {
  WorkloadOptions o;
  o.conversations = 400;
  o.rate = 10;
  o.session_share = 0.25;
  o.turns = 4;
  o.prompt_tokens = 100;
  o.output_tokens = 20;
  o.range_ratio = 0.5;
  o.token_lo = 0;
  o.token_hi = 50;
  o.seed = 9;
  absl::StatusOr<std::vector<Conversation>> a = MakeWorkload(o), b = MakeWorkload(o);
  ASSERT_TRUE(a.ok() && b.ok());
  int sessions = 0;
  double last = -1;
  for (size_t i = 0; i < a->size(); ++i) {
    const Conversation& c = (*a)[i];
    EXPECT_EQ(c.start_s, (*b)[i].start_s);
    EXPECT_EQ(c.turns.size(), c.session ? 4u : 1u);
    ASSERT_EQ(c.turns[0].prompt, (*b)[i].turns[0].prompt);
    for (const Turn& t : c.turns) {
      EXPECT_GE(t.prompt.size(), 50u);
      EXPECT_LE(t.prompt.size(), 150u);
      EXPECT_GE(t.output_tokens, 10);
      EXPECT_LE(t.output_tokens, 30);
      for (uint32_t id : t.prompt) EXPECT_LT(id, 50u);
    }
    EXPECT_GE(c.start_s, last);
    last = c.start_s;
    sessions += c.session;
  }
  EXPECT_NEAR(sessions, 100, 30);
  // Poisson at 10/s: 399 gaps of mean 0.1 s.
  EXPECT_NEAR(a->back().start_s, 39.9, 8);
  o.seed = 10;
  EXPECT_NE(MakeWorkload(o)->front().turns[0].prompt, a->front().turns[0].prompt);

  o.poisson = false;
  o.rate = 4;
  absl::StatusOr<std::vector<Conversation>> fixed = MakeWorkload(o);
  EXPECT_DOUBLE_EQ((*fixed)[3].start_s, 0.75);
  o.rate = std::numeric_limits<double>::infinity();
  EXPECT_EQ(MakeWorkload(o)->back().start_s, 0.0);  // a burst
  o.session_share = 1.5;
  EXPECT_EQ(MakeWorkload(o).status().message(), "--session_share must be in [0, 1]");
}

TEST(ServingWorkloadTest, PromptIdsAvoidBosAndEosWhereverTheySit) {
  EXPECT_EQ(OrdinaryIds(258, 256, 257), std::make_pair(0, 256));  // the byte tokenizer
  EXPECT_EQ(OrdinaryIds(32000, 1, 2), std::make_pair(3, 32000));  // Llama-style
  EXPECT_EQ(OrdinaryIds(100, 0, 99), std::make_pair(1, 99));
}

TEST(ServingReportTest, PercentilesInterpolateAndFailuresAreCountedByStatus) {
  const Distribution d = Summarize({4, 1, 3, 2, 5});
  EXPECT_DOUBLE_EQ(d.mean, 3);
  EXPECT_DOUBLE_EQ(d.p50, 3);
  EXPECT_DOUBLE_EQ(d.p90, 4.6);  // numpy.percentile([1..5], 90)
  EXPECT_DOUBLE_EQ(d.p99, 4.96);

  std::vector<RequestRecord> rs(4);
  rs[0] = {false, 0, 0.1, 0.5, 10, 5, {0.1, 0.1, 0.1, 0.1}, "OK"};
  rs[1] = {true, 0, 0.3, 0.7, 10, 3, {0.2, 0.2}, "OK"};
  rs[2].status = "RESOURCE_EXHAUSTED";
  rs[3].status = "RESOURCE_EXHAUSTED";
  const Report r = MakeReport(rs, 2.0);
  EXPECT_EQ(r.requests, 4);
  EXPECT_EQ(r.succeeded, 2);
  EXPECT_EQ(r.output_tokens, 8);
  EXPECT_DOUBLE_EQ(r.output_tokens_per_s, 4);
  EXPECT_DOUBLE_EQ(r.ttft_ms.mean, 200);
  EXPECT_DOUBLE_EQ(r.tpot_ms.p50, 150);  // 400 ms / 4 and 400 ms / 2
  EXPECT_EQ(r.itl_ms.count, 6);
  EXPECT_EQ(r.failures.at("RESOURCE_EXHAUSTED"), 2);
  EXPECT_NE(ReportTable(r).find("failures: RESOURCE_EXHAUSTED=2"), std::string::npos);
  EXPECT_EQ(ReportJson(r)["failures"]["RESOURCE_EXHAUSTED"], 2);
}

}  // namespace
}  // namespace mcserve::bench
