#include "server/engine/output_processor.h"

#include <gtest/gtest.h>

#include "server/tokenizer/byte_tokenizer.h"
#include "server/tokenizer/sentencepiece_tokenizer.h"
#include "tests/support/spm_golden.h"

namespace mcserve::engine {
namespace {

const tokenizer::ByteTokenizer kTok(258, 256, 257);

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

TEST(OutputProcessorTest, IncludeStopStrKeepsTheMatchInTheText) {
  RequestParams p = Params(100, {"END"});
  p.include_stop_str_in_output = true;
  OutputProcessor out(p, kTok);
  EXPECT_EQ(Feed(out, "hi EN"), "hi ");
  EXPECT_EQ(Feed(out, "D"), "END");
  EXPECT_EQ(out.finish_reason(), FinishReason::kStop);
  EXPECT_EQ(out.matched_stop_str(), "END");
  EXPECT_EQ(out.generated(), 6);
}

TEST(OutputProcessorTest, StopStringsMatchOnlyFromMinTokensOn) {
  RequestParams p = Params(100, {"ab"});
  p.min_tokens = 3;
  OutputProcessor out(p, kTok);
  EXPECT_EQ(Feed(out, "ab"), "ab");  // 2 tokens: too early, released as text
  EXPECT_FALSE(out.finished());
  EXPECT_EQ(Feed(out, "cab"), "c");  // the 4th and 5th tokens match
  EXPECT_EQ(out.finish_reason(), FinishReason::kStop);
  EXPECT_EQ(out.generated(), 5);
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

TEST(OutputProcessorTest, StopStringMatchesTextNotRawBytes) {
  RequestParams p = Params(10, {"\xEF\xBF\xBD"});  // U+FFFD
  OutputProcessor out(p, kTok);
  EXPECT_EQ(Feed(out, "a"), "a");
  EXPECT_EQ(out.Add(0xFF), "");  // an invalid byte becomes U+FFFD, which is the stop string
  EXPECT_EQ(out.finish_reason(), FinishReason::kStop);
}

// The SentencePiece tokenizer of the spm.make_models fixture.
const tokenizer::Tokenizer& Spm() {
  static const tokenizer::Tokenizer* tok = [] {
    auto t = tokenizer::SentencePieceTokenizer::Load(testing::SpmModelPath(), 512, 1, 2);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->release() : nullptr;
  }();
  return *tok;
}

std::vector<int32_t> SpmIds(const std::string& text) { return *Spm().Encode(text); }

std::vector<std::string> AddEach(OutputProcessor& out, const std::vector<int32_t>& ids) {
  std::vector<std::string> texts;
  for (int32_t id : ids) {
    texts.push_back(out.Add(id));
    if (out.finished()) break;
  }
  return texts;
}

std::string Join(const std::vector<std::string>& parts) {
  std::string all;
  for (const std::string& s : parts) all += s;
  return all;
}

TEST(OutputProcessorSentencePieceTest, StopStringSpanningTokensEndsTheText) {
  // The tiny model is trained on the docs at test time, so its pieces follow
  // the docs' text: the expectations are derived from its segmentation.
  const std::vector<int32_t> ids = SpmIds("Hello world");
  size_t completes = 0;  // the token whose text completes "lo w"
  while (completes < ids.size() &&
         Spm().Decode(absl::MakeConstSpan(ids.data(), completes + 1))->find("lo w") ==
             std::string::npos) {
    ++completes;
  }
  ASSERT_LT(completes, ids.size());
  ASSERT_GT(completes, 1u) << "the stop string must span several tokens";
  RequestParams p = Params(100, {"lo w"});
  OutputProcessor out(p, Spm());
  out.SetContext(/*at_text_start=*/true, {});
  const std::vector<std::string> texts = AddEach(out, ids);
  // Text that might start "lo w" is held back until it cannot; the stop
  // string and what follows are never emitted.
  EXPECT_EQ(Join(texts), "Hel");
  for (const std::string& t : texts) EXPECT_EQ(t.find("lo"), std::string::npos) << t;
  EXPECT_EQ(out.finish_reason(), FinishReason::kStop);
  EXPECT_EQ(out.matched_stop_str(), "lo w");
  EXPECT_EQ(out.generated(), static_cast<int>(completes) + 1);
}

TEST(OutputProcessorSentencePieceTest, StopStringInsideOneTokenCutsItsText) {
  RequestParams p = Params(100, {"erv"});
  OutputProcessor out(p, Spm());
  out.SetContext(true, {});
  EXPECT_EQ(Join(AddEach(out, SpmIds("The server streams"))), "The s");
  EXPECT_EQ(out.matched_stop_str(), "erv");
}

TEST(OutputProcessorSentencePieceTest, ByteFallbackEmojiIsHeldUntilComplete) {
  RequestParams p = Params(100);
  OutputProcessor out(p, Spm());
  out.SetContext(true, {});
  EXPECT_EQ(AddEach(out, SpmIds("a\U0001F600b")),
            (std::vector<std::string>{"a", "", "", "", "\xF0\x9F\x98\x80", "b"}));
  RequestParams q = Params(3);  // ends inside the emoji: one U+FFFD per byte, as Decode
  OutputProcessor cut(q, Spm());
  cut.SetContext(true, {});
  EXPECT_EQ(Join(AddEach(cut, SpmIds("a\U0001F600b"))), "a\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(*Spm().Decode(
                {SpmIds("a\U0001F600b")[0], SpmIds("a\U0001F600b")[1], SpmIds("a\U0001F600b")[2]}),
            "a\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(OutputProcessorSentencePieceTest, StopStringSpanningAByteFallbackCharacter) {
  RequestParams p = Params(100, {"\U0001F600b"});
  OutputProcessor out(p, Spm());
  out.SetContext(true, {});
  EXPECT_EQ(Join(AddEach(out, SpmIds("a\U0001F600b and more"))), "a");
  EXPECT_EQ(out.finish_reason(), FinishReason::kStop);
}

TEST(OutputProcessorSentencePieceTest, TheContextDecidesTheLeadingSpace) {
  const std::vector<int32_t> gen = SpmIds("Hello world");
  RequestParams p = Params(100);
  // Right after BOS: SentencePiece drops the dummy-prefix space.
  OutputProcessor first(p, Spm());
  first.SetContext(true, {});
  EXPECT_EQ(Join(AddEach(first, gen)) + first.Close(), "Hello world");
  // After a prompt: the space stays, as in Decode(prompt + gen).
  const std::vector<int32_t> prompt = SpmIds("Hi");
  OutputProcessor after(p, Spm());
  after.SetContext(true, prompt);
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), gen.begin(), gen.end());
  EXPECT_EQ(Join(AddEach(after, gen)) + after.Close(),
            Spm().Decode(all)->substr(Spm().Decode(prompt)->size()));
  // A later request of a session that has text.
  OutputProcessor later(p, Spm());
  later.SetContext(false, {});
  EXPECT_EQ(Join(AddEach(later, gen)) + later.Close(), " Hello world");
  EXPECT_FALSE(later.at_text_start());
}

TEST(OutputProcessorSentencePieceTest, AtTextStartSurvivesTextlessTokens) {
  RequestParams p = Params(100);
  p.ignore_eos = true;
  OutputProcessor out(p, Spm());
  out.SetContext(true, {1});  // just BOS
  EXPECT_TRUE(out.at_text_start());
  EXPECT_EQ(out.Add(2), "");  // eos, ignored: no text
  EXPECT_TRUE(out.at_text_start());
  EXPECT_EQ(out.Add(SpmIds("x")[1]), "x");
  EXPECT_FALSE(out.at_text_start());
}

}  // namespace
}  // namespace mcserve::engine
