// The byte tokenizer (mc-model.md §6) and Utf8Stream.
#include <gtest/gtest.h>

#include <random>

#include "server/tokenizer/byte_tokenizer.h"
#include "server/tokenizer/tokenizer_factory.h"
#include "server/tokenizer/utf8_stream.h"

namespace mcserve::tokenizer {
namespace {

std::string PushAll(Utf8Stream& s, const std::string& bytes) {
  std::string out;
  for (char c : bytes) out += s.Push(static_cast<uint8_t>(c));
  return out;
}

TEST(ByteTokenizerTest, EncodesUtf8Bytes) {
  ByteTokenizer tok(258, 256, 257);
  EXPECT_EQ(*tok.Encode("hé"), (std::vector<int32_t>{104, 0xC3, 0xA9}));
  EXPECT_EQ(*tok.Encode(""), std::vector<int32_t>{});
  EXPECT_EQ(tok.kind(), "byte");
  EXPECT_EQ(tok.model_path(), "");
}

TEST(ByteTokenizerTest, OnlyBytesAndEosAreSampleable) {
  ByteTokenizer tok(300, 256, 257);  // padded past 258
  EXPECT_TRUE(tok.Sampleable(0));
  EXPECT_TRUE(tok.Sampleable(255));
  EXPECT_TRUE(tok.Sampleable(257));
  EXPECT_FALSE(tok.Sampleable(256));  // bos is never sampled
  EXPECT_FALSE(tok.Sampleable(299));  // nor padding ids
  ASSERT_EQ(tok.sampleable_ids().size(), 257u);
  EXPECT_EQ(tok.sampleable_ids().front(), 0);
  EXPECT_EQ(tok.sampleable_ids().back(), 257);
  EXPECT_EQ(tok.vocab_size(), 300);
  EXPECT_EQ(tok.tokenizer_vocab_size(), 258);
}

TEST(ByteTokenizerTest, DecodeDropsSpecialAndPaddingIdsAndChecksRange) {
  ByteTokenizer tok(300, 256, 257);
  EXPECT_EQ(*tok.Decode({256, 'h', 0xC3, 0xA9, 299, 257}), "hé");
  EXPECT_EQ(*tok.Decode({'a', 0xE2, 0x82}), "a\xEF\xBF\xBD");  // cut-off character
  absl::StatusOr<std::string> bad = tok.Decode({'a', 300});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "ids[1] = 300 is not below vocab_size 300");
  EXPECT_EQ(tok.Decode({-1}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ByteTokenizerTest, TokenBytesAreTheByte) {
  ByteTokenizer tok(258, 256, 257);
  EXPECT_EQ(tok.TokenBytes('x'), "x");
  EXPECT_EQ(tok.TokenBytes(0xC3), "\xC3");
  EXPECT_EQ(tok.TokenBytes(256), "");
}

TEST(ByteTokenizerTest, StreamEqualsDecodeOnRandomIds) {
  ByteTokenizer tok(260, 256, 257);
  std::mt19937 rng(5);
  for (int round = 0; round < 200; ++round) {
    std::vector<int32_t> ids(rng() % 20);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % 260);
    std::unique_ptr<TextStream> s = tok.NewStream(/*at_text_start=*/true);
    std::string streamed;
    for (int32_t id : ids) streamed += s->Push(id);
    streamed += s->Flush();
    EXPECT_EQ(streamed, *tok.Decode(ids));
  }
}

TEST(ByteTokenizerTest, CreateChecksBosAndEos) {
  EXPECT_TRUE(ByteTokenizer::Create(258, 256, 257).ok());
  EXPECT_EQ(ByteTokenizer::Create(258, 255, 257).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ByteTokenizer::Create(258, 256, 258).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status same = ByteTokenizer::Create(258, 256, 256).status();
  EXPECT_EQ(same.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(same.message().find("both 256"), absl::string_view::npos) << same;
}

TEST(TokenizerFactoryTest, BuildsTheByteTokenizer) {
  TokenizerSpec spec;
  spec.vocab_size = 260;
  spec.bos_id = 256;
  spec.eos_id = 257;
  absl::StatusOr<std::unique_ptr<const Tokenizer>> t = CreateTokenizer(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->kind(), "byte");
  EXPECT_EQ((*t)->vocab_size(), 260);
  spec.bos_id.reset();
  EXPECT_EQ(CreateTokenizer(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TokenizerFactoryTest, SentencePieceWithoutAPathIsInvalid) {
  TokenizerSpec spec;
  spec.type = TokenizerSpec::Type::kSentencePiece;
  spec.vocab_size = 512;
  absl::Status s = CreateTokenizer(spec).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("tokenizer.model"), absl::string_view::npos) << s;
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
}  // namespace mcserve::tokenizer
