// A real server whose tokenizer is SentencePiece, over gRPC on loopback:
// a random mc-lm model with vocab_size 512 served with --tokenizer_model
// (the fixture's tiny model; until the fla loader reads tokenizer.model
// from a checkpoint, this flag is how a server gets one). Tokenize and
// Detokenize agree with python3-sentencepiece, and generated text is what
// SentencePiece decodes from the generated ids.
#include <gtest/gtest.h>
#include <signal.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/model/weights.h"
#include "tests/support/generate_helpers.h"
#include "tests/support/server_process.h"
#include "tests/support/spm_golden.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

constexpr uint32_t kBos = 1;
constexpr uint32_t kEos = 2;
constexpr uint32_t kUnk = 0;

class SentencePieceServerTest : public ::testing::Test {
 protected:
  // No fatal assertion here: gtest would report every test as skipped.
  // SetUp fails each test instead when the server did not start.
  static void SetUpTestSuite() {
    const std::string dir = FreshDir("spm_server_model");
    model::ModelConfig c = SmallConfig(model::MemoryRule::kDelta, true, model::Aggregation::kGrm,
                                       /*segment_length=*/8, model::Boundary::kContinue);
    c.vocab_size = 512;
    *start_error_ = model::WriteRandomModel(c, dir, /*seed=*/42);
    if (!start_error_->ok()) return;
    auto p = ServerProcess::Start(dir, {"--tokenizer_model=" + SpmModelPath(), "--max_sessions=4",
                                        "--max_tokens_limit=100", "--default_max_tokens=50"});
    if (!p.ok()) {
      *start_error_ = p.status();
      return;
    }
    server_ = *std::move(p);
  }
  static void TearDownTestSuite() {
    if (server_ == nullptr) return;
    EXPECT_EQ(server_->Signal(SIGTERM), 0) << server_->Log();
    server_.reset();
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << *start_error_; }

  client::Client& client() { return server_->client(); }

  std::vector<uint32_t> Tokenize(const std::string& text, bool add_bos = false) {
    auto ids = client().Tokenize(text, add_bos);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<uint32_t>{};
  }
  std::string Detokenize(const std::vector<uint32_t>& ids) {
    auto text = client().Detokenize(ids);
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? *text : "";
  }
  // Checks that `gen`'s streamed `text` is Decode(history + gen) minus
  // Decode(history), then appends gen to history. False when the history
  // ends inside a byte-fallback character (the requirement does not apply).
  bool ExpectContinues(std::vector<uint32_t>& history, const Completion& gen) {
    const std::string before = Detokenize(history);
    history.insert(history.end(), gen.tokens.begin(), gen.tokens.end());
    const std::string all = Detokenize(history);
    if (!absl::StartsWith(all, before)) return false;
    EXPECT_EQ(gen.text, all.substr(before.size()));
    return true;
  }

  static std::unique_ptr<ServerProcess> server_;
  static absl::Status* const start_error_;
};

std::unique_ptr<ServerProcess> SentencePieceServerTest::server_;
absl::Status* const SentencePieceServerTest::start_error_ = new absl::Status;

v1::GenerateRequest Sampled(const std::string& prompt, uint32_t max_tokens, int64_t seed,
                            const std::string& session = "") {
  v1::GenerateRequest r = TextRequest(prompt, max_tokens, session, seed);
  r.mutable_sampling_params()->set_ignore_eos(true);
  return r;
}

TEST_F(SentencePieceServerTest, ModelInfoDescribesTheTokenizer) {
  auto info = client().GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->vocab_size(), 512u);
  EXPECT_EQ(info->tokenizer().kind(), "sentencepiece");
  EXPECT_EQ(info->tokenizer().vocab_size(), 512u);
  EXPECT_EQ(info->tokenizer().bos_id(), kBos);
  EXPECT_EQ(info->tokenizer().eos_id(), kEos);
  EXPECT_EQ(info->tokenizer().model_path(), SpmModelPath());
  EXPECT_EQ(info->bos_id(), kBos);  // the tokenizer's, not the mc-lm config's 256
  EXPECT_EQ(info->eos_id(), kEos);
}

TEST_F(SentencePieceServerTest, TokenizeAndDetokenizeMatchPython) {
  const SpmGolden golden = LoadSpmGolden();
  ASSERT_FALSE(golden.cases.empty());
  for (const SpmCase& c : golden.cases) {
    const std::vector<uint32_t> ids(c.ids.begin(), c.ids.end());
    EXPECT_EQ(Tokenize(c.text), ids) << c.text;
    std::vector<uint32_t> with_bos = {kBos};
    with_bos.insert(with_bos.end(), ids.begin(), ids.end());
    EXPECT_EQ(Tokenize(c.text, /*add_bos=*/true), with_bos) << c.text;
    EXPECT_EQ(Detokenize(ids), c.decoded) << c.text;
    EXPECT_EQ(Detokenize(with_bos), c.decoded_after_bos) << c.text;
  }
}

TEST_F(SentencePieceServerTest, BadIdsAreInvalidArgumentAndTheServerServesOn) {
  absl::StatusOr<std::string> bad = client().Detokenize({5, 512});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "ids[1] = 512 is not below vocab_size 512");
  bad = client().Detokenize({4294967295u});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "ids[0] = 4294967295 is not below vocab_size 512");
  Completion prompt_ids = Collect(client(), TokenRequest({kBos, 600}, 4));
  EXPECT_EQ(prompt_ids.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(prompt_ids.status.message().find("token_ids.ids[1] = 600"), std::string::npos)
      << prompt_ids.status;
  // Still serving.
  EXPECT_EQ(Detokenize(Tokenize("still here")), "still here");
  Completion after = Collect(client(), Sampled("still here", 4, /*seed=*/1));
  ASSERT_TRUE(after.status.ok()) << after.status;
  EXPECT_EQ(after.tokens.size(), 4u);
}

TEST_F(SentencePieceServerTest, TextPromptGeneratesWhatSentencePieceDecodes) {
  const std::vector<uint32_t> prompt = Tokenize("Hello world");
  int checked = 0;
  for (int64_t seed = 1; seed <= 6; ++seed) {
    Completion c = Collect(client(), Sampled("Hello world", 24, seed));
    ASSERT_TRUE(c.status.ok()) << c.status;
    ASSERT_EQ(c.tokens.size(), 24u);
    EXPECT_EQ(c.last.usage().prompt_tokens(), prompt.size() + 1);  // BOS too
    for (uint32_t t : c.tokens) {
      EXPECT_LT(t, 512u);
      EXPECT_NE(t, kBos);
      EXPECT_NE(t, kUnk);
    }
    std::vector<uint32_t> history = {kBos};
    history.insert(history.end(), prompt.begin(), prompt.end());
    checked += ExpectContinues(history, c) ? 1 : 0;
  }
  EXPECT_EQ(checked, 6);  // "Hello world" ends with a whole character
}

// A one-shot request with an empty prompt generates right after BOS:
// SentencePiece drops the dummy-prefix space of the first piece, and so
// does the stream.
TEST_F(SentencePieceServerTest, GenerationRightAfterBosDropsTheDummyPrefix) {
  int dropped = 0;
  for (int64_t seed = 1; seed <= 40 && dropped < 2; ++seed) {
    Completion c = Collect(client(), Sampled("", 8, seed));
    ASSERT_TRUE(c.status.ok()) << c.status;
    std::vector<uint32_t> history = {kBos};
    ASSERT_TRUE(ExpectContinues(history, c));
    // Did the first piece have a space to drop? Mid-text it shows.
    const std::vector<uint32_t> mid = {Tokenize("x")[1], c.tokens[0]};
    if (Detokenize(mid) == "x " + Detokenize({c.tokens[0]})) ++dropped;
  }
  EXPECT_EQ(dropped, 2) << "no sampled first piece started with the space marker";
}

TEST_F(SentencePieceServerTest, SessionTextContinuesAcrossRequests) {
  int checked = 0;
  for (int64_t seed = 1; seed <= 4; ++seed) {
    const std::string id = absl::StrCat("spm-session-", seed);
    ASSERT_TRUE(client().CreateSession(id).ok());
    std::vector<uint32_t> history = {kBos};
    // Only BOS so far (max_tokens 0 feeds nothing more): still the start.
    Completion none = Collect(client(), Sampled("", 0, seed, id));
    ASSERT_TRUE(none.status.ok()) << none.status;
    Completion first = Collect(client(), Sampled("", 6, seed, id));
    ASSERT_TRUE(first.status.ok()) << first.status;
    ASSERT_TRUE(ExpectContinues(history, first));
    ++checked;
    for (const std::string& prompt : {std::string("Hi"), std::string(""), std::string(" there")}) {
      const std::vector<uint32_t> p = Tokenize(prompt);
      Completion next = Collect(client(), Sampled(prompt, 6, seed, id));
      ASSERT_TRUE(next.status.ok()) << next.status;
      history.insert(history.end(), p.begin(), p.end());
      checked += ExpectContinues(history, next) ? 1 : 0;
    }
    auto info = client().GetSession(id);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->num_tokens(), history.size());
    ASSERT_TRUE(client().DeleteSession(id).ok());
  }
  EXPECT_GE(checked, 10);
}

TEST_F(SentencePieceServerTest, StopStringOnTheGeneratedText) {
  Completion full = Collect(client(), Sampled("Hello world", 30, /*seed=*/3));
  ASSERT_TRUE(full.status.ok()) << full.status;
  // Two ASCII characters from the middle of the text, likely across tokens.
  size_t at = full.text.size() / 2;
  while (at + 1 < full.text.size() && (static_cast<uint8_t>(full.text[at]) >= 0x80 ||
                                       static_cast<uint8_t>(full.text[at + 1]) >= 0x80)) {
    ++at;
  }
  ASSERT_LT(at + 1, full.text.size()) << "no ASCII pair in the generated text";
  const std::string stop = full.text.substr(at, 2);
  v1::GenerateRequest r = Sampled("Hello world", 30, /*seed=*/3);
  r.mutable_sampling_params()->add_stop(stop);
  Completion cut = Collect(client(), r);
  ASSERT_TRUE(cut.status.ok()) << cut.status;
  EXPECT_EQ(cut.last.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(cut.last.matched_stop_str(), stop);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
}

}  // namespace
}  // namespace mcserve::testing
