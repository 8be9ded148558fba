// The SentencePiece tokenizer against python3-sentencepiece's golden output
// for the tiny models the spm.make_models fixture trains, and its
// streaming text against libsentencepiece's Decode.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/match.h"
#include "server/tokenizer/sentencepiece_tokenizer.h"
#include "server/tokenizer/tokenizer_factory.h"
#include "tests/support/spm_golden.h"

namespace mcserve::tokenizer {
namespace {

using ::mcserve::testing::LoadSpmGolden;
using ::mcserve::testing::SpmCase;
using ::mcserve::testing::SpmGolden;
using ::mcserve::testing::SpmModelPath;

std::unique_ptr<SentencePieceTokenizer> Load(const std::string& variant, int32_t vocab_size = 512,
                                             std::optional<int32_t> bos = 1,
                                             std::optional<int32_t> eos = 2) {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> t =
      SentencePieceTokenizer::Load(SpmModelPath(variant), vocab_size, bos, eos);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

// Streams `ids` after `context` (not streamed), as the engine does: a new
// sequence, the context pushed and flushed, then the ids; returns the text
// of each id, then the final flush.
std::vector<std::string> StreamAfter(const Tokenizer& tok, const std::vector<int32_t>& context,
                                     const std::vector<int32_t>& ids) {
  std::unique_ptr<TextStream> s = tok.NewStream(/*at_text_start=*/true);
  for (int32_t id : context) s->Push(id);
  s->Flush();
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(s->Push(id));
  out.push_back(s->Flush());
  return out;
}

std::string Join(const std::vector<std::string>& parts) {
  std::string all;
  for (const std::string& p : parts) all += p;
  return all;
}

std::vector<int32_t> WithBos(const std::vector<int32_t>& ids) {
  std::vector<int32_t> all = {1};
  all.insert(all.end(), ids.begin(), ids.end());
  return all;
}

class SentencePieceGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    golden_ = LoadSpmGolden(GetParam());
    tok_ = Load(GetParam());
    ASSERT_NE(tok_, nullptr);
    ASSERT_FALSE(golden_.cases.empty());
  }
  SpmGolden golden_;
  std::unique_ptr<SentencePieceTokenizer> tok_;
};

TEST_P(SentencePieceGoldenTest, DescribesTheModel) {
  EXPECT_EQ(tok_->kind(), "sentencepiece");
  EXPECT_EQ(tok_->vocab_size(), 512);
  EXPECT_EQ(tok_->tokenizer_vocab_size(), golden_.vocab_size);
  EXPECT_EQ(tok_->bos_id(), golden_.bos_id);
  EXPECT_EQ(tok_->eos_id(), golden_.eos_id);
  EXPECT_EQ(tok_->model_path(), SpmModelPath(GetParam()));
  // The Mistral-like model keeps spaces, so its decoder drops one; the
  // default normalizer removes extra whitespace, so it drops all.
  EXPECT_EQ(tok_->start_space(),
            GetParam().empty() ? StartSpace::kDropOne : StartSpace::kDropWhileEmpty);
}

TEST_P(SentencePieceGoldenTest, EncodeMatchesPython) {
  for (const SpmCase& c : golden_.cases) {
    absl::StatusOr<std::vector<int32_t>> ids = tok_->Encode(c.text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, c.ids) << "text: \"" << c.text << "\"";
  }
}

TEST_P(SentencePieceGoldenTest, DecodeMatchesPython) {
  for (const SpmCase& c : golden_.cases) {
    EXPECT_EQ(*tok_->Decode(c.ids), c.decoded) << c.text;
    EXPECT_EQ(*tok_->Decode(WithBos(c.ids)), c.decoded_after_bos) << c.text;
    for (size_t k = 0; k <= c.ids.size(); ++k) {
      const std::vector<int32_t> head(c.ids.begin(), c.ids.begin() + k);
      EXPECT_EQ(*tok_->Decode(head), c.prefix_decodes[k]) << c.text << " k=" << k;
    }
  }
}

TEST_P(SentencePieceGoldenTest, TokenBytesAreThePieces) {
  for (const SpmCase& c : golden_.cases) {
    for (size_t i = 0; i < c.ids.size(); ++i) {
      const std::string& piece = c.pieces[i];
      if (absl::StartsWith(piece, "<0x")) {
        EXPECT_EQ(tok_->TokenBytes(c.ids[i]).size(), 1u) << piece;
      } else {
        std::string spaced = piece;
        for (size_t at; (at = spaced.find("\xE2\x96\x81")) != std::string::npos;) {
          spaced.replace(at, 3, " ");
        }
        EXPECT_EQ(tok_->TokenBytes(c.ids[i]), spaced);
      }
    }
  }
}

// The generation starts right after BOS (a new session, empty prompt):
// SentencePiece drops the dummy-prefix space of its first piece.
TEST_P(SentencePieceGoldenTest, StreamAfterBosEqualsDecode) {
  for (const SpmCase& c : golden_.cases) {
    EXPECT_EQ(Join(StreamAfter(*tok_, {1}, c.ids)), c.decoded_after_bos) << c.text;
    EXPECT_EQ(Join(StreamAfter(*tok_, {}, c.ids)), c.decoded) << c.text;
  }
}

// A generation G continuing C: its text is Decode(C + G) minus Decode(C),
// for every split where Decode(C) is a prefix (not inside a character
// made of byte pieces).
TEST_P(SentencePieceGoldenTest, StreamContinuingASequenceEqualsDecodeDifference) {
  int checked = 0;
  for (const SpmCase& c : golden_.cases) {
    const std::string all = c.decoded_after_bos;
    for (size_t k = 0; k <= c.ids.size(); ++k) {
      const std::string& before = c.prefix_decodes[k];
      if (!absl::StartsWith(all, before)) continue;  // k cuts a byte-fallback character
      const std::vector<int32_t> context = WithBos({c.ids.begin(), c.ids.begin() + k});
      const std::vector<int32_t> gen(c.ids.begin() + k, c.ids.end());
      EXPECT_EQ(Join(StreamAfter(*tok_, context, gen)), all.substr(before.size()))
          << c.text << " split at " << k;
      ++checked;
    }
  }
  EXPECT_GT(checked, 200);
}

TEST_P(SentencePieceGoldenTest, ByteFallbackEmojiComesOutWholeOnItsLastToken) {
  const SpmCase* emoji = nullptr;
  for (const SpmCase& c : golden_.cases) {
    if (c.text == "a\U0001F600b") emoji = &c;
  }
  ASSERT_NE(emoji, nullptr);
  ASSERT_EQ(emoji->pieces, (std::vector<std::string>{"\xE2\x96\x81"
                                                     "a",
                                                     "<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "b"}));
  EXPECT_EQ(StreamAfter(*tok_, {1}, emoji->ids),
            (std::vector<std::string>{"a", "", "", "", "\xF0\x9F\x98\x80", "b", ""}));
}

TEST_P(SentencePieceGoldenTest, RandomIdsStreamAsDecode) {
  std::mt19937 rng(11);
  int continued = 0;
  for (int round = 0; round < 400; ++round) {
    std::vector<int32_t> ids(1 + rng() % 24);
    for (int32_t& id : ids) {
      // Half byte pieces (ids 3..258), so byte runs and cut characters are common.
      id = static_cast<int32_t>(rng() % 2 ? 3 + rng() % 256 : rng() % 512);
    }
    const std::string all = *tok_->Decode(ids);
    EXPECT_EQ(Join(StreamAfter(*tok_, {}, ids)), all);
    const size_t k = rng() % (ids.size() + 1);
    const std::vector<int32_t> context(ids.begin(), ids.begin() + k);
    const std::string before = *tok_->Decode(context);
    if (!absl::StartsWith(all, before)) continue;
    const std::vector<int32_t> gen(ids.begin() + k, ids.end());
    EXPECT_EQ(Join(StreamAfter(*tok_, context, gen)), all.substr(before.size()));
    ++continued;
  }
  EXPECT_GT(continued, 100);
}

TEST_P(SentencePieceGoldenTest, SampleableAreTextPiecesAndEos) {
  EXPECT_FALSE(tok_->Sampleable(0));  // unk
  EXPECT_FALSE(tok_->Sampleable(1));  // bos
  EXPECT_TRUE(tok_->Sampleable(2));   // eos
  EXPECT_TRUE(tok_->Sampleable(3));   // <0x00>
  EXPECT_TRUE(tok_->Sampleable(511));
  EXPECT_FALSE(tok_->Sampleable(512));
  // 256 byte pieces, 253 other pieces, and eos.
  EXPECT_EQ(tok_->sampleable_ids().size(), 510u);
  EXPECT_TRUE(std::is_sorted(tok_->sampleable_ids().begin(), tok_->sampleable_ids().end()));
}

INSTANTIATE_TEST_SUITE_P(Models, SentencePieceGoldenTest, ::testing::Values("", "nmt"),
                         [](const auto& info) {
                           return info.param.empty() ? std::string("Mistral") : info.param;
                         });

TEST(SentencePieceTokenizerTest, PaddedVocabularyIsValidButSilentAndNeverSampled) {
  std::unique_ptr<SentencePieceTokenizer> tok = Load("", /*vocab_size=*/600);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 600);
  EXPECT_EQ(tok->tokenizer_vocab_size(), 512);
  const std::vector<int32_t> hello = *tok->Encode("Hello");
  std::vector<int32_t> padded = hello;
  padded.insert(padded.begin() + 1, 550);
  EXPECT_EQ(*tok->Decode(padded), "Hello");
  EXPECT_FALSE(tok->Sampleable(550));
  EXPECT_EQ(tok->sampleable_ids().back(), 511);
  EXPECT_EQ(tok->TokenBytes(550), "");
  absl::Status bad = tok->Decode({5, 600}).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "ids[1] = 600 is not below vocab_size 600");
}

TEST(SentencePieceTokenizerTest, SmallerVocabularyThanTheModelIsALoadError) {
  absl::Status s = SentencePieceTokenizer::Load(SpmModelPath(), 500, 1, 2).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("has 512 pieces, more than the model's vocab_size 500"),
            absl::string_view::npos)
      << s;
  EXPECT_NE(s.message().find(SpmModelPath()), absl::string_view::npos) << s;
}

TEST(SentencePieceTokenizerTest, MissingFileIsNotFoundNamingIt) {
  const std::string path = SpmModelPath() + ".missing";
  absl::Status s = SentencePieceTokenizer::Load(path, 512, 1, 2).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "tokenizer model '" + path + "' not found");
}

TEST(SentencePieceTokenizerTest, DamagedFileIsInvalidArgumentNamingIt) {
  const std::string dir = ::testing::TempDir() + "/spm_damaged";
  std::filesystem::create_directories(dir);
  std::ifstream in(SpmModelPath(), std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(good.size(), 1000u);
  for (const std::string& bytes :
       {std::string("not a model at all\n"), good.substr(0, 700), std::string()}) {
    const std::string path = dir + "/tokenizer.model";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    absl::Status s = SentencePieceTokenizer::Load(path, 512, 1, 2).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_TRUE(absl::StartsWith(s.message(), "tokenizer model '" + path + "' is not a valid "))
        << s;
  }
  absl::Status d = SentencePieceTokenizer::Load(dir, 512, 1, 2).status();
  EXPECT_EQ(d.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.message(), "tokenizer model '" + dir + "' is not a file");
}

TEST(SentencePieceTokenizerTest, BosAndEosAreCheckedAgainstTheModel) {
  // Unset: the SentencePiece model's own.
  std::unique_ptr<SentencePieceTokenizer> own = Load("", 512, std::nullopt, std::nullopt);
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->bos_id(), 1);
  EXPECT_EQ(own->eos_id(), 2);
  // An id past the pieces (an added token) may be eos; then it is sampleable.
  std::unique_ptr<SentencePieceTokenizer> added = Load("", 600, 1, 520);
  ASSERT_NE(added, nullptr);
  EXPECT_TRUE(added->Sampleable(520));
  EXPECT_FALSE(added->Sampleable(2));  // a control piece that is no longer eos
  // A text or byte piece cannot be bos or eos.
  absl::Status text = SentencePieceTokenizer::Load(SpmModelPath(), 512, 300, 2).status();
  EXPECT_EQ(text.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(text.message().find("at bos_id 300, which must be a control piece (the model's own "
                                "bos_id is 1)"),
            absl::string_view::npos)
      << text;
  absl::Status unk = SentencePieceTokenizer::Load(SpmModelPath(), 512, 1, 0).status();
  EXPECT_EQ(unk.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unk.message().find("eos_id 0"), absl::string_view::npos) << unk;
  absl::Status range = SentencePieceTokenizer::Load(SpmModelPath(), 512, 1, 512).status();
  EXPECT_EQ(range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(range.message(), "eos_id 512 is not in [0, vocab_size 512)");
  // One control piece for both (as the model config allows): it is eos, so
  // it may be sampled.
  std::unique_ptr<SentencePieceTokenizer> same = Load("", 512, 2, 2);
  ASSERT_NE(same, nullptr);
  EXPECT_EQ(same->bos_id(), 2);
  EXPECT_TRUE(same->Sampleable(2));
  EXPECT_FALSE(same->Sampleable(1));
}

TEST(SentencePieceTokenizerTest, FactoryBuildsItFromASpec) {
  TokenizerSpec spec;
  spec.type = TokenizerSpec::Type::kSentencePiece;
  spec.vocab_size = 512;
  spec.bos_id = 1;
  spec.eos_id = 2;
  spec.model_path = SpmModelPath();
  absl::StatusOr<std::unique_ptr<const Tokenizer>> t = CreateTokenizer(spec);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->kind(), "sentencepiece");
  spec.model_path = "/nonexistent/tokenizer.model";
  EXPECT_EQ(CreateTokenizer(spec).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mcserve::tokenizer
