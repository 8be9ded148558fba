// Generate with n > 1 over real gRPC: one prefill, n forks, completion i
// equal to a one-shot run with seed + i.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/time/clock.h"
#include "tests/integration/server_fixture.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

class FanOutTest : public ServerTest {
 protected:
  // A high max_tokens cap: the cancelled fan-out asks for more than any machine
  // generates before its deadline.
  static void SetUpTestSuite() {
    StartServer({"--metrics_port_file=" + MetricsPortFile(), "--max_tokens_limit=1000000"});
  }
  // Per process: ctest runs each test of this suite as its own process.
  static const std::string& MetricsPortFile() {
    static const std::string path = FreshDir("fan_out_metrics") + "/port";
    return path;
  }
  static double PromptTokensCounted() {
    return SampleValue(ScrapeMetrics(ReadPortFile(MetricsPortFile())),
                       "mcserve_prompt_tokens_total");
  }
};

struct PerIndex {
  std::vector<uint32_t> tokens;
  std::string text;
  v1::GenerateResponse last;
};

TEST_F(FanOutTest, NCompletionsEqualOneShotRunsWithSeedPlusIndex) {
  const std::string prompt = "a prompt of some thirty tokens, more or less";
  v1::GenerateRequest fan = TextRequest(prompt, 8, "", /*seed=*/7);
  fan.mutable_sampling_params()->set_temperature(1.0f);
  fan.mutable_sampling_params()->set_ignore_eos(true);
  fan.set_n(4);
  std::map<uint32_t, PerIndex> got;
  int messages = 0;
  const double counted_before = PromptTokensCounted();
  absl::Status s = client().Generate(fan, [&](const v1::GenerateResponse& r) {
    ++messages;
    PerIndex& p = got[r.index()];
    p.tokens.insert(p.tokens.end(), r.token_ids().begin(), r.token_ids().end());
    p.text += r.text();
    if (r.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) p.last = r;
  });
  ASSERT_TRUE(s.ok()) << s;
  const double counted = PromptTokensCounted() - counted_before;
  ASSERT_EQ(got.size(), 4u);
  EXPECT_GE(messages, 4 * 8 / 2) << "the completions stream as they are made";
  std::set<std::vector<uint32_t>> distinct;
  for (uint32_t i = 0; i < 4; ++i) {
    v1::GenerateRequest one = TextRequest(prompt, 8, "", 7 + i);
    one.mutable_sampling_params()->set_temperature(1.0f);
    one.mutable_sampling_params()->set_ignore_eos(true);
    const Completion c = Collect(client(), one);
    ASSERT_TRUE(c.status.ok()) << c.status;
    EXPECT_EQ(got[i].tokens, c.tokens) << "completion " << i;
    EXPECT_EQ(got[i].text, c.text) << "completion " << i;
    EXPECT_EQ(got[i].last.finish_reason(), v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(got[i].last.usage().completion_tokens(), 8u);
    EXPECT_EQ(got[i].last.usage().prompt_tokens(), c.last.usage().prompt_tokens());
    distinct.insert(c.tokens);
  }
  EXPECT_GT(distinct.size(), 1u) << "different seeds, different completions";
  // One prefill: the prompt-token counter moved by the prompt once.
  EXPECT_EQ(counted, got[0].last.usage().prompt_tokens());
  EXPECT_GT(counted, 30);
  // The scratch sessions are gone once the stream has ended.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!client().ListSessions()->empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(client().ListSessions()->empty());
}

TEST_F(FanOutTest, ACancelledFanOutEndsAllItsCompletionsAndLeavesNoSession) {
  v1::GenerateRequest r = LongRequest("long", 1000000);
  r.set_n(3);
  client::CallOptions opts;
  opts.timeout = absl::Milliseconds(300);
  int messages = 0;
  absl::Status s = client().Generate(
      r, [&](const v1::GenerateResponse&) { ++messages; }, opts);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!client().ListSessions()->empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(client().ListSessions()->empty());
  WaitIdle();
  const Completion after = Collect(client(), TextRequest("still serving", 3));
  EXPECT_TRUE(after.status.ok()) << after.status;
}

TEST_F(FanOutTest, BadFanOutsAreRefusedByName) {
  v1::GenerateRequest r = TextRequest("x", 4);
  r.set_n(17);
  Completion c = Collect(client(), r);
  EXPECT_EQ(c.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status.message(), "n must be at most 16, got 17");
  ASSERT_TRUE(client().CreateSession("fan").ok());
  r = TextRequest("x", 4, "fan");
  r.set_n(2);
  c = Collect(client(), r);
  EXPECT_EQ(c.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status.message().find("one-shot"), std::string::npos) << c.status;
  r = TextRequest("x", 4);
  r.set_n(2);
  r.mutable_sampling_params()->set_temperature(-1);
  c = Collect(client(), r);
  EXPECT_EQ(c.status.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(client().DeleteSession("fan").ok());
  EXPECT_TRUE(client().ListSessions()->empty());
}

}  // namespace
}  // namespace mcserve::testing
