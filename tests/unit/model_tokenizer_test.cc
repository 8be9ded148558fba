// Which tokenizer a model's config names (the seam the model loader fills).
#include "server/engine/model_tokenizer.h"

#include <gtest/gtest.h>

#include "tests/support/spm_golden.h"

namespace mcserve::engine {
namespace {

model::ModelConfig SentencePieceConfig(const std::string& path) {
  model::ModelConfig c;
  c.model_type = "gated_deltanet";
  c.vocab_size = 512;
  c.bos_id = 1;
  c.eos_id = 2;
  c.tokenizer = model::TokenizerKind::kSentencePiece;
  c.tokenizer_path = path;
  return c;
}

TEST(ModelTokenizerTest, SpecCarriesTheConfigsFields) {
  const tokenizer::TokenizerSpec spec = TokenizerSpecFor(SentencePieceConfig("/m/tokenizer.model"));
  EXPECT_EQ(spec.type, tokenizer::TokenizerSpec::Type::kSentencePiece);
  EXPECT_EQ(spec.vocab_size, 512);
  EXPECT_EQ(spec.bos_id, 1);
  EXPECT_EQ(spec.eos_id, 2);
  EXPECT_EQ(spec.model_path, "/m/tokenizer.model");
  model::ModelConfig byte;
  byte.vocab_size = 260;
  EXPECT_EQ(TokenizerSpecFor(byte).type, tokenizer::TokenizerSpec::Type::kByte);
}

TEST(ModelTokenizerTest, LoadsTheSentencePieceModelTheConfigNames) {
  auto tok = LoadModelTokenizer(SentencePieceConfig(testing::SpmModelPath()));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->kind(), "sentencepiece");
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_EQ((*tok)->model_path(), testing::SpmModelPath());
}

TEST(ModelTokenizerTest, MissingTokenizerModelIsNotFoundNamingTheFile) {
  const std::string path = ::testing::TempDir() + "/no_such_model/tokenizer.model";
  absl::Status s = LoadModelTokenizer(SentencePieceConfig(path)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(),
            "cannot load the model's tokenizer: tokenizer model '" + path + "' not found");
}

TEST(ModelTokenizerTest, ConfigBosThatIsATextPieceIsRefused) {
  model::ModelConfig c = SentencePieceConfig(testing::SpmModelPath());
  c.bos_id = 300;
  absl::Status s = LoadModelTokenizer(c).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("bos_id 300"), absl::string_view::npos) << s;
}

TEST(ModelTokenizerTest, OverrideServesASentencePieceModelWithItsOwnIds) {
  model::ModelConfig byte;  // an mc-lm config: byte tokenizer, bos 256, eos 257
  byte.vocab_size = 512;
  auto tok = LoadModelTokenizer(byte, testing::SpmModelPath());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->kind(), "sentencepiece");
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_EQ((*tok)->vocab_size(), 512);
  auto plain = LoadModelTokenizer(byte);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->kind(), "byte");
  EXPECT_EQ((*plain)->bos_id(), 256);
}

}  // namespace
}  // namespace mcserve::engine
