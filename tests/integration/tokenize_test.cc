// Tokenize, Detokenize and ModelInfo's tokenizer on the byte-tokenizer test
// server (vocab_size 260: two padding ids past bos 256 and eos 257).
#include <gtest/gtest.h>

#include "tests/integration/server_fixture.h"

namespace mcserve::testing {
namespace {

using TokenizeTest = ServerTest;

TEST_F(TokenizeTest, ModelInfoDescribesTheByteTokenizer) {
  auto m = client().GetModelInfo();
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->tokenizer().kind(), "byte");
  EXPECT_EQ(m->tokenizer().vocab_size(), 258u);
  EXPECT_EQ(m->tokenizer().bos_id(), 256u);
  EXPECT_EQ(m->tokenizer().eos_id(), 257u);
  EXPECT_EQ(m->tokenizer().model_path(), "");
  EXPECT_EQ(m->vocab_size(), 260u);
}

TEST_F(TokenizeTest, TextIsItsUtf8BytesAndBack) {
  auto ids = client().Tokenize("h\xC3\xA9");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, (std::vector<uint32_t>{'h', 0xC3, 0xA9}));
  auto with_bos = client().Tokenize("h", /*add_bos=*/true);
  ASSERT_TRUE(with_bos.ok()) << with_bos.status();
  EXPECT_EQ(*with_bos, (std::vector<uint32_t>{256, 'h'}));
  // bos, eos and padding have no text; a cut-off character is U+FFFD.
  auto text = client().Detokenize({256, 'o', 'k', 259, 257, 0xE2});
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "ok\xEF\xBF\xBD");
}

TEST_F(TokenizeTest, GeneratedTextIsTheDetokenizedTokens) {
  Completion c = Collect(client(), LongRequest("Hello", 20));
  ASSERT_TRUE(c.status.ok()) << c.status;
  auto text = client().Detokenize(c.tokens);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(c.text, *text);
}

TEST_F(TokenizeTest, DetokenizeOutsideTheVocabularyNamesTheId) {
  auto bad = client().Detokenize({'a', 260});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "ids[1] = 260 is not below vocab_size 260");
  EXPECT_TRUE(client().Tokenize("still serving").ok());
}

}  // namespace
}  // namespace mcserve::testing
