#include "server/model/tokenizer.h"

#include <gtest/gtest.h>

namespace mcserve::model {
namespace {

std::string PushAll(Utf8Stream& s, const std::string& bytes) {
  std::string out;
  for (char c : bytes) out += s.Push(static_cast<uint8_t>(c));
  return out;
}

TEST(ByteTokenizerTest, EncodesUtf8Bytes) {
  ByteTokenizer tok(256, 257);
  EXPECT_EQ(tok.Encode("hé"), (std::vector<int32_t>{104, 0xC3, 0xA9}));
  EXPECT_TRUE(tok.Sampleable(0));
  EXPECT_TRUE(tok.Sampleable(257));
  EXPECT_FALSE(tok.Sampleable(256));  // bos is never sampled
  EXPECT_FALSE(tok.Sampleable(300));  // nor padding ids
}

TEST(Utf8StreamTest, HoldsIncompleteCharacterUntilComplete) {
  Utf8Stream s;
  EXPECT_EQ(s.Push('a'), "a");
  EXPECT_EQ(s.Push(0xE2), "");  // first byte of the euro sign
  EXPECT_EQ(s.Push(0x82), "");
  EXPECT_EQ(s.Push(0xAC), "\xE2\x82\xAC");
  EXPECT_EQ(PushAll(s, "\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");  // 4-byte emoji
  EXPECT_FALSE(s.has_pending());
}

TEST(Utf8StreamTest, ReplacesInvalidBytes) {
  Utf8Stream s;
  EXPECT_EQ(s.Push(0xFF), "\xEF\xBF\xBD");
  EXPECT_EQ(s.Push(0x80), "\xEF\xBF\xBD");  // stray continuation
  // A lead byte followed by a non-continuation: U+FFFD, then the byte itself.
  EXPECT_EQ(PushAll(s,
                    "\xC3"
                    "A"),
            "\xEF\xBF\xBD"
            "A");
  // Overlong / surrogate second bytes are rejected at once.
  EXPECT_EQ(PushAll(s, "\xE0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(PushAll(s, "\xED\xA0"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Utf8StreamTest, FlushReplacesDanglingPrefix) {
  Utf8Stream s;
  EXPECT_EQ(PushAll(s, "ok\xE2\x82"), "ok");
  EXPECT_EQ(s.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(s.Flush(), "");
}

}  // namespace
}  // namespace mcserve::model
