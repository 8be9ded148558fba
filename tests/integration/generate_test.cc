// Generate over real gRPC on loopback against the real server binary.
#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/integration/server_fixture.h"
#include "tests/support/test_device.h"

namespace mcserve::testing {
namespace {

using GenerateTest = ServerTest;

TEST_F(GenerateTest, StreamsCompletionWithUsage) {
  Completion c = Collect(client(), TextRequest("Hello, world", 20));
  ASSERT_TRUE(c.status.ok()) << c.status;
  EXPECT_EQ(c.tokens.size(), 20u);
  EXPECT_GE(c.responses, 1);
  EXPECT_EQ(c.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(c.last.usage().prompt_tokens(), 13u);  // BOS + 12 bytes
  EXPECT_EQ(c.last.usage().completion_tokens(), 20u);
  // History: BOS + 12 prompt + 20 generated; 8-token segments closed by the
  // 32 fed tokens (the last generated token is pending): 4 checkpoints.
  EXPECT_EQ(c.last.usage().session_tokens(), 33u);
  EXPECT_EQ(c.last.usage().checkpoints(), 4u);
  EXPECT_EQ(c.request_id.rfind("req-", 0), 0u) << c.request_id;
}

TEST_F(GenerateTest, GreedyIsDeterministicAndSeedsReproduce) {
  Completion a = Collect(client(), TextRequest("abc", 16));
  Completion b = Collect(client(), TextRequest("abc", 16));
  EXPECT_EQ(a.tokens, b.tokens);
  Completion s1 = Collect(client(), TextRequest("abc", 16, "", /*seed=*/5));
  Completion s2 = Collect(client(), TextRequest("abc", 16, "", /*seed=*/5));
  Completion s3 = Collect(client(), TextRequest("abc", 16, "", /*seed=*/6));
  EXPECT_EQ(s1.tokens, s2.tokens);
  EXPECT_NE(s1.tokens, s3.tokens);
}

TEST_F(GenerateTest, ConcurrentRequestsMatchSoloRuns) {
  const std::vector<v1::GenerateRequest> reqs = {
      TextRequest("first prompt", 30, "", 11),
      TextRequest("a different, longer second prompt", 30, "", 12), TextRequest("3", 30),
      TextRequest("fourth", 30, "", 14)};
  std::vector<Completion> solo;
  for (const auto& r : reqs) solo.push_back(Collect(client(), r));
  std::vector<Completion> together(reqs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < reqs.size(); ++i) {
    threads.emplace_back([&, i] { together[i] = Collect(client(), reqs[i]); });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(together[i].status.ok()) << together[i].status;
    EXPECT_EQ(together[i].tokens, solo[i].tokens) << "request " << i;
  }
}

// Two sessions, two turns each, run at the same time: each gets exactly the
// tokens it gets when run alone (batching shares no state across sessions).
TEST_F(GenerateTest, ConcurrentSessionsMatchSoloRuns) {
  auto run_session = [this](const std::string& id, const std::string& a, const std::string& b) {
    std::vector<uint32_t> tokens;
    for (const std::string& turn : {a, b}) {
      Completion c = Collect(client(), LongRequest(turn, 20, id));
      EXPECT_TRUE(c.status.ok()) << c.status;
      tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
    }
    return tokens;
  };
  for (const char* id : {"solo-a", "solo-b", "both-a", "both-b"}) {
    ASSERT_TRUE(client().CreateSession(id).ok()) << id;
  }
  const std::vector<uint32_t> solo_a = run_session("solo-a", "alpha turn one. ", "and two");
  const std::vector<uint32_t> solo_b = run_session("solo-b", "beta: a longer first turn", "2");
  std::vector<uint32_t> both_a, both_b;
  std::thread ta([&] { both_a = run_session("both-a", "alpha turn one. ", "and two"); });
  std::thread tb([&] { both_b = run_session("both-b", "beta: a longer first turn", "2"); });
  ta.join();
  tb.join();
  EXPECT_EQ(both_a, solo_a);
  EXPECT_EQ(both_b, solo_b);
  EXPECT_NE(solo_a, solo_b);
  for (const char* id : {"solo-a", "solo-b", "both-a", "both-b"}) {
    ASSERT_TRUE(client().DeleteSession(id).ok()) << id;
  }
}

TEST_F(GenerateTest, SessionContinuedOverTwoRequestsEqualsJoinedPrompt) {
  auto s = client().CreateSession();
  ASSERT_TRUE(s.ok()) << s.status();
  const std::string id = s->session_id();
  Completion first = Collect(client(), TextRequest("The first turn. ", 9, id));
  ASSERT_TRUE(first.status.ok()) << first.status;
  Completion second = Collect(client(), TextRequest("Second turn?", 12, id, /*seed=*/3));
  ASSERT_TRUE(second.status.ok()) << second.status;

  // One-shot request with the whole history as its prompt.
  std::vector<uint32_t> joined;
  for (char ch : std::string("The first turn. ")) joined.push_back(static_cast<uint8_t>(ch));
  joined.insert(joined.end(), first.tokens.begin(), first.tokens.end());
  for (char ch : std::string("Second turn?")) joined.push_back(static_cast<uint8_t>(ch));
  Completion one = Collect(client(), TokenRequest(joined, 12, "", /*seed=*/3));
  ASSERT_TRUE(one.status.ok()) << one.status;
  EXPECT_EQ(second.tokens, one.tokens);
  EXPECT_EQ(second.last.usage().session_tokens(), one.last.usage().session_tokens());
  EXPECT_EQ(second.last.usage().checkpoints(), one.last.usage().checkpoints());
  EXPECT_EQ(second.last.usage().prompt_tokens(), 12u);  // no BOS on a continued session

  auto info = client().GetSession(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->num_tokens(), 1u + 16 + 9 + 12 + 12);
  EXPECT_EQ(info->num_checkpoints(), (info->num_tokens() - 1) / 8);
  EXPECT_FALSE(info->busy());
  ASSERT_TRUE(client().DeleteSession(id).ok());
}

TEST_F(GenerateTest, PrefillOnlyThenGenerateEqualsOneRequest) {
  auto s = client().CreateSession();
  ASSERT_TRUE(s.ok());
  Completion prefill = Collect(client(), TextRequest("system: be brief. ", 0, s->session_id()));
  ASSERT_TRUE(prefill.status.ok()) << prefill.status;
  EXPECT_TRUE(prefill.tokens.empty());
  EXPECT_EQ(prefill.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  Completion cont = Collect(client(), TextRequest("", 10, s->session_id()));
  Completion one = Collect(client(), TextRequest("system: be brief. ", 10));
  EXPECT_EQ(cont.tokens, one.tokens);
  ASSERT_TRUE(client().DeleteSession(s->session_id()).ok());
}

TEST_F(GenerateTest, LogprobsComeWithEveryToken) {
  v1::GenerateRequest r = TextRequest("xyz", 6);
  r.set_return_logprobs(true);
  r.set_top_logprobs(3);
  Completion c = Collect(client(), r);
  ASSERT_TRUE(c.status.ok());
  ASSERT_EQ(c.logprobs.size(), c.tokens.size());
  for (size_t i = 0; i < c.tokens.size(); ++i) {
    const v1::TokenLogprob& lp = c.logprobs[i];
    EXPECT_EQ(lp.token_id(), c.tokens[i]);
    EXPECT_LE(lp.logprob(), 0.0f);
    ASSERT_EQ(lp.top_size(), 3);
    EXPECT_GE(lp.top(0).logprob(), lp.top(1).logprob());
    // Greedy picks the best sampleable token, which is at least as likely.
    EXPECT_LE(lp.logprob(), lp.top(0).logprob());
  }
}

TEST_F(GenerateTest, StopStringEndsGenerationAndIsNotReturned) {
  v1::GenerateRequest r = TextRequest("stop test", 24);
  r.mutable_sampling_params()->set_ignore_eos(true);
  Completion free = Collect(client(), r);
  ASSERT_TRUE(free.status.ok());
  ASSERT_EQ(free.tokens.size(), 24u);
  // Stop at the first ASCII byte generated after the third token (stop
  // strings are UTF-8 text; the random test model also emits other bytes).
  std::string bytes;
  for (uint32_t t : free.tokens) bytes.push_back(static_cast<char>(t < 256 ? t : 0));
  size_t pick = 3;
  while (pick < bytes.size() && (static_cast<uint8_t>(bytes[pick]) >= 0x80 || bytes[pick] == 0))
    ++pick;
  ASSERT_LT(pick, bytes.size()) << "the fixed test model should emit an ASCII byte";
  const std::string stop = bytes.substr(pick, 1);
  r.mutable_sampling_params()->add_stop(stop);
  Completion c = Collect(client(), r);
  ASSERT_TRUE(c.status.ok());
  EXPECT_EQ(c.last.finish_reason(), v1::FINISH_REASON_STOP);
  ASSERT_EQ(c.last.matched_stop_case(), v1::GenerateResponse::kMatchedStopStr);
  EXPECT_EQ(c.last.matched_stop_str(), stop);
  const size_t at = bytes.find(stop);
  EXPECT_EQ(c.tokens.size(), at + stop.size());
  // The text is the unstopped run's text up to the stop string (an ASCII
  // byte, so it starts no multi-byte character), without the stop string.
  EXPECT_EQ(c.text.find(stop), std::string::npos) << c.text;
  const size_t text_at = free.text.find(stop);
  ASSERT_NE(text_at, std::string::npos) << free.text;
  EXPECT_EQ(c.text, free.text.substr(0, text_at));
}

TEST_F(GenerateTest, ClientCancelMidStreamFreesTheRequest) {
  auto s = client().CreateSession();
  ASSERT_TRUE(s.ok());
  v1::GenerateRequest r = LongRequest("cancel me", 100000, s->session_id());
  grpc::ClientContext* ctx = nullptr;
  int seen = 0;
  absl::Status st = client().Generate(
      r,
      [&](const v1::GenerateResponse& resp) {
        seen += resp.token_ids_size();
        if (seen >= 5) ctx->TryCancel();
      },
      {}, [&](grpc::ClientContext* c) { ctx = c; });
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled) << st;
  WaitIdle();
  auto info = client().GetSession(s->session_id());
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->busy());
  // The session is usable again at once.
  Completion again = Collect(client(), TextRequest("more", 3, s->session_id()));
  EXPECT_TRUE(again.status.ok()) << again.status;
  ASSERT_TRUE(client().DeleteSession(s->session_id()).ok());
}

TEST_F(GenerateTest, DeadlineEndsStreamAndFreesTheRequest) {
  client::CallOptions opts;
  opts.timeout = absl::Milliseconds(300);
  Completion c = Collect(client(), LongRequest("deadline", 100000), opts);
  EXPECT_EQ(c.status.code(), absl::StatusCode::kDeadlineExceeded) << c.status;
  WaitIdle();
}

TEST_F(GenerateTest, AbortEndsStreamWithCancelled) {
  v1::GenerateRequest r = LongRequest("abort me", 100000);
  r.set_request_id("abort-me-1");
  absl::Notification started;
  Completion c;
  std::thread t([&] {
    c.status = client().Generate(r, [&](const v1::GenerateResponse& resp) {
      c.last = resp;
      c.tokens.insert(c.tokens.end(), resp.token_ids().begin(), resp.token_ids().end());
      if (!started.HasBeenNotified()) started.Notify();
    });
  });
  started.WaitForNotification();
  EXPECT_TRUE(client().Abort("abort-me-1").ok());
  t.join();
  EXPECT_TRUE(c.status.ok()) << c.status;
  EXPECT_EQ(c.last.finish_reason(), v1::FINISH_REASON_CANCELLED);
  EXPECT_LT(c.tokens.size(), 100000u);
  EXPECT_EQ(client().Abort("abort-me-1").code(), absl::StatusCode::kNotFound);
}

TEST_F(GenerateTest, DeleteSessionCancelsItsRequest) {
  auto s = client().CreateSession("delete-while-busy");
  ASSERT_TRUE(s.ok());
  absl::Notification started;
  Completion c;
  std::thread t([&] {
    c.status = client().Generate(LongRequest("long", 100000, "delete-while-busy"),
                                 [&](const v1::GenerateResponse& resp) {
                                   c.last = resp;
                                   if (!started.HasBeenNotified()) started.Notify();
                                 });
  });
  started.WaitForNotification();
  EXPECT_TRUE(client().DeleteSession("delete-while-busy").ok());
  t.join();
  EXPECT_EQ(c.last.finish_reason(), v1::FINISH_REASON_CANCELLED);
  EXPECT_EQ(client().GetSession("delete-while-busy").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(GenerateTest, ModelInfoDescribesTheModel) {
  auto m = client().GetModelInfo();
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->model_type(), "mc-lm");
  EXPECT_EQ(m->aggregation(), "grm");
  EXPECT_EQ(m->memory_rule(), "delta");
  EXPECT_EQ(m->memory_decay(), "scalar");
  EXPECT_EQ(m->segment_length(), 8u);
  EXPECT_EQ(m->vocab_size(), 260u);
  EXPECT_EQ(m->max_prompt_tokens(), 512u);
  EXPECT_EQ(m->device(), TestDevice().str());
  EXPECT_EQ(m->checkpoint_dtype(), "float32");
}

}  // namespace
}  // namespace mcserve::testing
