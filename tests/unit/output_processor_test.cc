#include "server/engine/output_processor.h"

#include <gtest/gtest.h>

namespace mcserve::engine {
namespace {

const model::ByteTokenizer kTok(256, 257);

RequestParams Params(int max_tokens, std::vector<std::string> stop = {}) {
  RequestParams p;
  p.max_tokens = max_tokens;
  p.stop = std::move(stop);
  return p;
}

std::string Feed(OutputProcessor& out, const std::string& bytes) {
  std::string text;
  for (char c : bytes) text += out.Add(static_cast<uint8_t>(c));
  return text;
}

TEST(OutputProcessorTest, StopsAtMaxTokens) {
  RequestParams p = Params(3);
  OutputProcessor out(p, kTok);
  EXPECT_EQ(Feed(out, "abc"), "abc");
  EXPECT_EQ(out.finish_reason(), FinishReason::kLength);
  EXPECT_EQ(out.generated(), 3);
}

TEST(OutputProcessorTest, EosEndsUnlessIgnored) {
  RequestParams p = Params(10);
  OutputProcessor out(p, kTok);
  EXPECT_EQ(out.Add('a'), "a");
  EXPECT_EQ(out.Add(257), "");
  EXPECT_EQ(out.finish_reason(), FinishReason::kEos);
  RequestParams q = Params(10);
  q.ignore_eos = true;
  OutputProcessor ignoring(q, kTok);
  EXPECT_EQ(ignoring.Add(257), "");
  EXPECT_FALSE(ignoring.finished());
}

TEST(OutputProcessorTest, StopStringIsHeldBackThenRemoved) {
  RequestParams p = Params(100, {"END"});
  OutputProcessor out(p, kTok);
  EXPECT_EQ(Feed(out, "hi E"), "hi ");  // "E" might start "END"
  EXPECT_EQ(Feed(out, "x"), "Ex");      // it did not
  EXPECT_EQ(Feed(out, "EN"), "");
  EXPECT_EQ(Feed(out, "D"), "");
  EXPECT_EQ(out.finish_reason(), FinishReason::kStop);
  EXPECT_EQ(out.matched_stop_str(), "END");
}

TEST(OutputProcessorTest, HeldTextIsReleasedAtLength) {
  RequestParams p = Params(3, {"xyz"});
  OutputProcessor out(p, kTok);
  EXPECT_EQ(Feed(out, "axy"), "axy");  // the last token releases everything
  EXPECT_EQ(out.finish_reason(), FinishReason::kLength);
}

TEST(OutputProcessorTest, StopTokenIdEndsWithoutItsText) {
  RequestParams p = Params(10);
  p.stop_token_ids = {'\n'};
  OutputProcessor out(p, kTok);
  EXPECT_EQ(Feed(out, "ab\n"), "ab");
  EXPECT_EQ(out.finish_reason(), FinishReason::kStop);
  EXPECT_EQ(out.matched_token_id(), '\n');
}

TEST(OutputProcessorTest, NeverSplitsACharacter) {
  RequestParams p = Params(10);
  OutputProcessor out(p, kTok);
  EXPECT_EQ(out.Add(0xC3), "");
  EXPECT_EQ(out.Add(0xA9), "\xC3\xA9");
  EXPECT_EQ(out.Add(0xE2), "");
  EXPECT_EQ(out.Close(), "\xEF\xBF\xBD");  // ended mid-character
}

}  // namespace
}  // namespace mcserve::engine
