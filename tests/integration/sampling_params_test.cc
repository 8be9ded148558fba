// vLLM's sampling fields over real gRPC, each shown by its exact effect on
// the small random test model (byte tokenizer: ids 0-255 bytes, 256 BOS,
// 257 EOS). Greedy throughout, with the model's raw logprobs (which the
// adjustments do not change) as the witness of what greedy had to pick.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "tests/integration/server_fixture.h"

namespace mcserve::testing {
namespace {

constexpr uint32_t kBos = 256;  // never sampled
constexpr uint32_t kEos = 257;
constexpr uint32_t kVocab = 258;

class SamplingParamsTest : public ServerTest {
 protected:
  // A greedy request with all top-20 raw logprobs, EOS an ordinary token.
  static v1::GenerateRequest Greedy(const std::string& prompt, uint32_t max_tokens) {
    v1::GenerateRequest r = TextRequest(prompt, max_tokens);
    r.set_return_logprobs(true);
    r.set_top_logprobs(20);
    r.mutable_sampling_params()->set_ignore_eos(true);
    return r;
  }
  Completion Run(const v1::GenerateRequest& r) {
    Completion c = Collect(client(), r);
    EXPECT_TRUE(c.status.ok()) << c.status;
    return c;
  }
};

TEST_F(SamplingParamsTest, LogitBiasForcesOrForbidsATokenAndAUniformShiftChangesNothing) {
  const Completion plain = Run(Greedy("the cat", 12));
  v1::GenerateRequest forced = Greedy("the cat", 12);
  (*forced.mutable_sampling_params()->mutable_logit_bias())['q'] = 100.0f;
  EXPECT_EQ(Run(forced).tokens, std::vector<uint32_t>(12, 'q'));

  v1::GenerateRequest forbidden = Greedy("the cat", 12);
  (*forbidden.mutable_sampling_params()->mutable_logit_bias())[plain.tokens[0]] = -100.0f;
  const Completion f = Run(forbidden);
  EXPECT_EQ(std::count(f.tokens.begin(), f.tokens.end(), plain.tokens[0]), 0);
  // The first pick is the runner-up of the unbiased first step.
  uint32_t runner_up = kBos;
  for (const v1::TopLogprob& t : plain.logprobs[0].top()) {
    if (t.token_id() != kBos && t.token_id() != plain.tokens[0]) {
      runner_up = t.token_id();
      break;
    }
  }
  EXPECT_EQ(f.tokens[0], runner_up);

  v1::GenerateRequest shifted = Greedy("the cat", 12);
  for (uint32_t id = 0; id < kVocab; ++id) {
    (*shifted.mutable_sampling_params()->mutable_logit_bias())[id] = 50.0f;
  }
  const Completion s = Run(shifted);
  EXPECT_EQ(s.tokens, plain.tokens);
  ASSERT_EQ(s.logprobs.size(), plain.logprobs.size());
  for (size_t i = 0; i < s.logprobs.size(); ++i) {
    EXPECT_EQ(s.logprobs[i].logprob(), plain.logprobs[i].logprob()) << "logprobs stay raw";
  }
}

// With +100 on every id all logits are positive, so a repetition penalty of
// 2 halves a seen token's logit (to < 60) below every unseen one (> 90):
// greedy must pick, each step, the most likely token not in the prompt or
// the output so far.
TEST_F(SamplingParamsTest, RepetitionPenaltyCoversThePromptAndTheOutput) {
  const std::string prompt = "aaab";
  v1::GenerateRequest r = Greedy(prompt, 16);
  for (uint32_t id = 0; id < kVocab; ++id) {
    (*r.mutable_sampling_params()->mutable_logit_bias())[id] = 100.0f;
  }
  r.mutable_sampling_params()->set_repetition_penalty(2.0f);
  const Completion c = Run(r);
  ASSERT_EQ(c.tokens.size(), 16u);
  std::set<uint32_t> seen(prompt.begin(), prompt.end());
  int checked = 0;
  for (size_t i = 0; i < c.tokens.size(); ++i) {
    EXPECT_EQ(seen.count(c.tokens[i]), 0u) << "step " << i << " repeated " << c.tokens[i];
    for (const v1::TopLogprob& t : c.logprobs[i].top()) {  // best first
      if (t.token_id() != kBos && seen.count(t.token_id()) == 0) {
        EXPECT_EQ(c.tokens[i], t.token_id()) << "step " << i;
        ++checked;
        break;
      }
    }
    seen.insert(c.tokens[i]);
  }
  EXPECT_EQ(checked, 16);
}

// Frequency and presence penalties shift logits, so raw logprobs compare as
// the adjusted logits do: greedy picks argmax(logprob - f*n - p*[n > 0]).
// A step is checked when the listed best beats the 20th raw logprob (which
// bounds every unlisted token, penalties only lowering) by a margin.
TEST_F(SamplingParamsTest, FrequencyAndPresencePenaltiesPickTheAdjustedBest) {
  for (const auto& [f, p] : {std::pair{0.7f, 0.0f}, std::pair{0.0f, 1.5f}, std::pair{0.4f, 0.4f}}) {
    v1::GenerateRequest r = Greedy("abab", 24);
    r.mutable_sampling_params()->set_frequency_penalty(f);
    r.mutable_sampling_params()->set_presence_penalty(p);
    const Completion c = Run(r);
    std::map<uint32_t, int> count;
    int checked = 0;
    for (size_t i = 0; i < c.tokens.size(); ++i) {
      const auto& top = c.logprobs[i].top();
      std::vector<std::pair<float, uint32_t>> adjusted;
      for (const v1::TopLogprob& t : top) {
        if (t.token_id() == kBos) continue;
        const int n = count[t.token_id()];
        adjusted.emplace_back(t.logprob() - f * n - (n > 0 ? p : 0.0f), t.token_id());
      }
      std::sort(adjusted.rbegin(), adjusted.rend());
      const float bound = top[top.size() - 1].logprob();
      if (adjusted[0].first > std::max(adjusted[1].first, bound) + 1e-3f) {
        EXPECT_EQ(c.tokens[i], adjusted[0].second) << "f=" << f << " p=" << p << " step " << i;
        ++checked;
      }
      ++count[c.tokens[i]];
    }
    EXPECT_GE(checked, 12) << "f=" << f << " p=" << p;
    // The penalties bite: the plain greedy continuation differs.
    EXPECT_NE(c.tokens, Run(Greedy("abab", 24)).tokens) << "f=" << f << " p=" << p;
  }
}

TEST_F(SamplingParamsTest, MinTokensHoldsOffEosAndStopIds) {
  // EOS made certain: it ends the stream at once...
  v1::GenerateRequest eos = TextRequest("hello", 20);
  (*eos.mutable_sampling_params()->mutable_logit_bias())[kEos] = 100.0f;
  Completion c = Run(eos);
  EXPECT_EQ(c.tokens, std::vector<uint32_t>{kEos});
  EXPECT_EQ(c.last.finish_reason(), v1::FINISH_REASON_EOS);
  // ...and only after min_tokens others with min_tokens.
  eos.mutable_sampling_params()->set_min_tokens(5);
  c = Run(eos);
  ASSERT_EQ(c.tokens.size(), 6u);
  EXPECT_EQ(std::count(c.tokens.begin(), c.tokens.end() - 1, kEos), 0);
  EXPECT_EQ(c.tokens.back(), kEos);
  EXPECT_EQ(c.last.finish_reason(), v1::FINISH_REASON_EOS);
  EXPECT_EQ(c.last.usage().completion_tokens(), 6u);

  v1::GenerateRequest stop = TextRequest("hello", 20);
  stop.mutable_sampling_params()->add_stop_token_ids('z');
  (*stop.mutable_sampling_params()->mutable_logit_bias())['z'] = 100.0f;
  stop.mutable_sampling_params()->set_min_tokens(3);
  c = Run(stop);
  ASSERT_EQ(c.tokens.size(), 4u);
  EXPECT_EQ(c.tokens.back(), uint32_t{'z'});
  EXPECT_EQ(c.last.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(c.last.matched_token_id(), uint32_t{'z'});
}

TEST_F(SamplingParamsTest, IncludeStopStrInOutputKeepsTheMatchedString) {
  const Completion plain = Run(Greedy("stop here", 16));
  // Two ASCII characters of its text from the third on (the random model
  // also writes bytes that come out as U+FFFD).
  size_t at = 2;
  while (at + 1 < plain.text.size() && (static_cast<unsigned char>(plain.text[at]) >= 0x80 ||
                                        static_cast<unsigned char>(plain.text[at + 1]) >= 0x80)) {
    ++at;
  }
  ASSERT_LT(at + 1, plain.text.size()) << plain.text;
  const std::string stop = plain.text.substr(at, 2);
  const std::string before = plain.text.substr(0, plain.text.find(stop));
  v1::GenerateRequest r = Greedy("stop here", 16);
  r.mutable_sampling_params()->add_stop(stop);
  Completion cut = Run(r);
  EXPECT_EQ(cut.text, before);
  EXPECT_EQ(cut.last.matched_stop_str(), stop);
  r.mutable_sampling_params()->set_include_stop_str_in_output(true);
  Completion kept = Run(r);
  EXPECT_EQ(kept.text, before + stop);
  EXPECT_EQ(kept.tokens, cut.tokens);
}

}  // namespace
}  // namespace mcserve::testing
