// The logits adjustments, value by value, in vLLM's order.
#include "server/model/logits_processor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace mcserve::model {
namespace {

const std::vector<float> kLogits = {2.0f, -1.0f, 0.5f, 0.0f, -3.0f, 4.0f};
constexpr int32_t kVocab = 6;

TEST(LogitsProcessorTest, AllOffIsInactive) {
  LogitsProcessor p(LogitsAdjustments{}, kVocab);
  EXPECT_FALSE(p.active());
  LogitsAdjustments min_only;
  min_only.min_tokens = 3;  // nothing to ban: inactive too
  EXPECT_FALSE(LogitsProcessor(min_only, kVocab).active());
}

TEST(LogitsProcessorTest, LogitBiasIsAdded) {
  LogitsAdjustments a;
  a.logit_bias = {{1, 5.0f}, {5, -100.0f}};
  LogitsProcessor p(a, kVocab);
  ASSERT_TRUE(p.active());
  std::vector<float> out;
  p.Apply(kLogits.data(), out);
  EXPECT_EQ(out, (std::vector<float>{2.0f, 4.0f, 0.5f, 0.0f, -3.0f, -96.0f}));
}

TEST(LogitsProcessorTest, MinTokensBansUntilReached) {
  LogitsAdjustments a;
  a.min_tokens = 2;
  a.banned_before_min = {5, 0};
  LogitsProcessor p(a, kVocab);
  std::vector<float> out;
  for (int step = 0; step < 3; ++step) {
    p.Apply(kLogits.data(), out);
    const bool banned = step < 2;
    EXPECT_EQ(std::isinf(out[5]) && out[5] < 0, banned) << step;
    EXPECT_EQ(std::isinf(out[0]) && out[0] < 0, banned) << step;
    EXPECT_EQ(out[2], 0.5f);
    p.AddOutput(2);
  }
}

TEST(LogitsProcessorTest, RepetitionDividesPositiveAndMultipliesNegative) {
  LogitsAdjustments a;
  a.repetition_penalty = 2.0f;
  LogitsProcessor p(a, kVocab);
  p.SetPrompt(std::vector<int32_t>{0, 1, 1});
  std::vector<float> out;
  p.Apply(kLogits.data(), out);
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.5f, 0.0f, -3.0f, 4.0f}));
  p.AddOutput(3);  // zero stays zero
  p.AddOutput(4);
  p.Apply(kLogits.data(), out);
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.5f, 0.0f, -6.0f, 4.0f}));
}

TEST(LogitsProcessorTest, FrequencyAndPresenceCountOnlyTheOutput) {
  LogitsAdjustments a;
  a.frequency_penalty = 0.5f;
  a.presence_penalty = 0.25f;
  LogitsProcessor p(a, kVocab);
  p.SetPrompt(std::vector<int32_t>{0, 0, 0});  // the prompt is not counted
  p.AddOutput(5);
  p.AddOutput(2);
  p.AddOutput(5);
  std::vector<float> out;
  p.Apply(kLogits.data(), out);
  // 5: twice -> 4 - 2*0.5 - 0.25; 2: once -> 0.5 - 0.5 - 0.25.
  EXPECT_EQ(out, (std::vector<float>{2.0f, -1.0f, -0.25f, 0.0f, -3.0f, 2.75f}));
}

TEST(LogitsProcessorTest, AppliedInVllmsOrder) {
  LogitsAdjustments a;
  a.logit_bias = {{1, 3.0f}};  // -1 + 3 = 2 > 0: then divided, not multiplied
  a.repetition_penalty = 4.0f;
  a.frequency_penalty = 1.0f;
  LogitsProcessor p(a, kVocab);
  p.SetPrompt(std::vector<int32_t>{});
  p.AddOutput(1);
  std::vector<float> out;
  p.Apply(kLogits.data(), out);
  EXPECT_FLOAT_EQ(out[1], 2.0f / 4.0f - 1.0f);
}

}  // namespace
}  // namespace mcserve::model
