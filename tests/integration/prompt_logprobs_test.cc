// Prompt log-probabilities (GenerateRequest.prompt_logprobs) over real gRPC:
// scoring a text gives, token by token, what generating it would have, after
// BOS or after a session's history; it never starts from the prefix cache;
// n > 1 carries the scores once; out-of-range values are refused.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/server_fixture.h"

namespace mcserve::testing {
namespace {

// The prefill (parallel form) and the decode (recurrent form) compute the
// same function in a different order.
constexpr float kTolerance = 2e-4f;

std::vector<uint32_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<uint32_t> Ids(const std::vector<v1::TokenLogprob>& lps) {
  std::vector<uint32_t> out;
  for (const v1::TokenLogprob& lp : lps) out.push_back(lp.token_id());
  return out;
}

v1::GenerateRequest Score(const std::vector<uint32_t>& ids, uint32_t top) {
  v1::GenerateRequest r = TokenRequest(ids, 0);
  r.set_prompt_logprobs(top);
  return r;
}

class PromptLogprobsTest : public ServerTest {
 protected:
  Completion Run(const v1::GenerateRequest& r) {
    Completion c = Collect(client(), r);
    EXPECT_TRUE(c.status.ok()) << c.status;
    return c;
  }
};

// Greedy generation of 12 tokens, then the prompt plus those tokens scored:
// the last 12 scores are the generation's own logprobs and alternatives.
TEST_F(PromptLogprobsTest, ScoringATextGivesWhatGeneratingItGave) {
  v1::GenerateRequest gen = TextRequest("the cat sat", 12);
  gen.set_return_logprobs(true);
  gen.set_top_logprobs(5);
  gen.mutable_sampling_params()->set_ignore_eos(true);
  const Completion g = Run(gen);
  ASSERT_EQ(g.tokens.size(), 12u);
  EXPECT_EQ(g.prompt_logprob_messages, 0);  // not asked for

  std::vector<uint32_t> text = Bytes("the cat sat");
  const size_t prompt = text.size();
  text.insert(text.end(), g.tokens.begin(), g.tokens.end());
  const Completion s = Run(Score(text, 5));
  EXPECT_EQ(s.responses, 1);
  EXPECT_EQ(s.prompt_logprob_messages, 1);
  EXPECT_TRUE(s.tokens.empty());
  EXPECT_EQ(s.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(s.last.usage().prompt_tokens(), text.size() + 1);  // with BOS
  EXPECT_EQ(s.last.usage().completion_tokens(), 0u);
  ASSERT_EQ(Ids(s.prompt_logprobs), text);
  for (size_t i = 0; i < s.prompt_logprobs.size(); ++i) {
    const v1::TokenLogprob& lp = s.prompt_logprobs[i];
    EXPECT_LE(lp.logprob(), 0.0f);
    ASSERT_EQ(lp.top_size(), 5) << i;
    for (int k = 1; k < 5; ++k) EXPECT_GE(lp.top(k - 1).logprob(), lp.top(k).logprob());
  }
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    const v1::TokenLogprob& scored = s.prompt_logprobs[prompt + i];
    const v1::TokenLogprob& generated = g.logprobs[i];
    EXPECT_NEAR(scored.logprob(), generated.logprob(), kTolerance) << i;
    EXPECT_EQ(scored.top(0).token_id(), g.tokens[i]) << i;  // greedy took the best
    for (int k = 0; k < 5; ++k) {
      EXPECT_NEAR(scored.top(k).logprob(), generated.top(k).logprob(), kTolerance) << i;
    }
  }
  // Top 0: the prompt's own tokens only.
  const Completion bare = Run(Score(text, 0));
  ASSERT_EQ(bare.prompt_logprobs.size(), text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    EXPECT_EQ(bare.prompt_logprobs[i].top_size(), 0);
    EXPECT_FLOAT_EQ(bare.prompt_logprobs[i].logprob(), s.prompt_logprobs[i].logprob());
  }
}

// A session's second turn is scored after its history: the same scores as
// the whole conversation scored in one piece. Generation still follows.
TEST_F(PromptLogprobsTest, ASessionsTurnIsScoredAfterItsHistory) {
  ASSERT_TRUE(client().CreateSession("scored").ok());
  const Completion first = Run(LongRequest("hello", 3, "scored"));
  ASSERT_EQ(first.tokens.size(), 3u);
  v1::GenerateRequest turn = LongRequest(" world", 4, "scored");
  turn.set_prompt_logprobs(2);
  const Completion second = Run(turn);
  EXPECT_EQ(second.prompt_logprob_messages, 1);
  EXPECT_EQ(second.tokens.size(), 4u);
  ASSERT_EQ(Ids(second.prompt_logprobs), Bytes(" world"));

  std::vector<uint32_t> all = Bytes("hello");
  all.insert(all.end(), first.tokens.begin(), first.tokens.end());
  const size_t history = all.size();
  for (uint32_t b : Bytes(" world")) all.push_back(b);
  const Completion whole = Run(Score(all, 2));
  ASSERT_EQ(whole.prompt_logprobs.size(), all.size());
  for (size_t i = 0; i < second.prompt_logprobs.size(); ++i) {
    EXPECT_NEAR(second.prompt_logprobs[i].logprob(), whole.prompt_logprobs[history + i].logprob(),
                kTolerance)
        << i;
  }
  // And the session then generated what a plain turn would have.
  ASSERT_TRUE(client().CreateSession("plain").ok());
  Run(LongRequest("hello", 3, "plain"));
  EXPECT_EQ(Run(LongRequest(" world", 4, "plain")).tokens, second.tokens);
  ASSERT_TRUE(client().DeleteSession("scored").ok());
  ASSERT_TRUE(client().DeleteSession("plain").ok());
}

// Cached prefix tokens have no logits: a scoring request feeds its whole
// prompt even when the cache holds it, and its scores are unchanged.
TEST_F(PromptLogprobsTest, ScoringNeverStartsFromThePrefixCache) {
  // Past one piece of the prefill grid (256 tokens), where hits end.
  const std::string prompt(300, 'a');
  const Completion cold = Run(Score(Bytes(prompt), 1));
  EXPECT_EQ(cold.last.usage().cached_prompt_tokens(), 0u);
  Run(TextRequest(prompt, 1));
  EXPECT_GT(Run(TextRequest(prompt, 1)).last.usage().cached_prompt_tokens(), 0u);  // cache warm
  const Completion warm = Run(Score(Bytes(prompt), 1));
  EXPECT_EQ(warm.last.usage().cached_prompt_tokens(), 0u);
  ASSERT_EQ(warm.prompt_logprobs.size(), prompt.size());
  for (size_t i = 0; i < prompt.size(); ++i) {
    EXPECT_FLOAT_EQ(warm.prompt_logprobs[i].logprob(), cold.prompt_logprobs[i].logprob()) << i;
  }
}

// n completions of one prompt: one prefill, so one set of scores, on
// completion 0's first message.
TEST_F(PromptLogprobsTest, NCompletionsCarryThePromptScoresOnce) {
  const std::vector<uint32_t> prompt = Bytes("one prompt");
  v1::GenerateRequest fan = TokenRequest(prompt, 3, "", /*seed=*/5);
  fan.set_n(3);
  fan.set_prompt_logprobs(1);
  int carrying = 0;
  std::vector<v1::TokenLogprob> got;
  absl::Status st = client().Generate(fan, [&](const v1::GenerateResponse& r) {
    if (r.prompt_logprobs_size() == 0) return;
    ++carrying;
    EXPECT_EQ(r.index(), 0u);
    got.assign(r.prompt_logprobs().begin(), r.prompt_logprobs().end());
  });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(carrying, 1);
  const Completion one = Run(Score(prompt, 1));
  ASSERT_EQ(Ids(got), prompt);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_FLOAT_EQ(got[i].logprob(), one.prompt_logprobs[i].logprob()) << i;
  }
}

TEST_F(PromptLogprobsTest, OutOfRangeIsRefusedNamingTheField) {
  v1::GenerateRequest r = Score(Bytes("x"), 21);
  const Completion c = Collect(client(), r);
  EXPECT_EQ(c.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.status.message(), "prompt_logprobs must be at most 20, got 21");
  // An empty prompt has nothing to score; BOS is not a prompt token.
  const Completion empty = Run(Score({}, 0));
  EXPECT_EQ(empty.prompt_logprob_messages, 0);
  EXPECT_EQ(empty.last.usage().prompt_tokens(), 1u);
}

}  // namespace
}  // namespace mcserve::testing
