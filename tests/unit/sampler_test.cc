#include "server/model/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "server/model/row_logprobs.h"
#include "server/tokenizer/byte_tokenizer.h"

namespace mcserve::model {
namespace {

std::vector<float> Logits(int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 2.0f);
  std::vector<float> l(vocab);
  for (float& x : l) x = n(rng);
  return l;
}

const tokenizer::ByteTokenizer kTok(300, 256, 257);

TEST(SamplerTest, GreedyPicksBestSampleableToken) {
  std::vector<float> l(300, 0.0f);
  l[256] = 10.0f;  // bos: never sampled
  l[299] = 9.0f;   // padding: never sampled
  l[65] = 5.0f;
  SamplerRng rng(1);
  EXPECT_EQ(SampleToken(l.data(), 300, kTok, {0.0f, 1.0f, 0}, rng), 65);
  l[257] = 6.0f;  // eos is sampleable
  EXPECT_EQ(SampleToken(l.data(), 300, kTok, {0.0f, 1.0f, 0}, rng), 257);
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDiffers) {
  const std::vector<float> l = Logits(258, 3);
  const SamplingConfig cfg{1.0f, 1.0f, 0};
  auto draw = [&](uint64_t seed) {
    SamplerRng rng(seed);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(SampleToken(l.data(), 258, kTok, cfg, rng));
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(SamplerTest, TopKOneAndTinyTopPAreGreedy) {
  const std::vector<float> l = Logits(258, 4);
  SamplerRng greedy_rng(0), rng(9);
  const int32_t best = SampleToken(l.data(), 258, kTok, {0.0f, 1.0f, 0}, greedy_rng);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(SampleToken(l.data(), 258, kTok, {1.0f, 1.0f, 1}, rng), best);
    EXPECT_EQ(SampleToken(l.data(), 258, kTok, {1.0f, 1e-6f, 0}, rng), best);
  }
}

TEST(SamplerTest, TopKRestrictsToKBest) {
  const std::vector<float> l = Logits(258, 5);
  std::vector<int32_t> order(258);
  std::iota(order.begin(), order.end(), 0);
  order.erase(order.begin() + 256);  // bos
  std::sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
  SamplerRng rng(2);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 2000; ++i) ++seen[SampleToken(l.data(), 258, kTok, {5.0f, 1.0f, 3}, rng)];
  EXPECT_EQ(seen.size(), 3u);
  for (const auto& [tok, n] : seen) {
    EXPECT_TRUE(tok == order[0] || tok == order[1] || tok == order[2]) << tok;
  }
}

TEST(SamplerTest, FrequenciesFollowTemperatureSoftmax) {
  std::vector<float> l(258, -1e9f);
  l[10] = std::log(0.7f);
  l[20] = std::log(0.3f);
  SamplerRng rng(3);
  int tens = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) tens += SampleToken(l.data(), 258, kTok, {1.0f, 1.0f, 0}, rng) == 10;
  EXPECT_NEAR(static_cast<double>(tens) / n, 0.7, 0.02);
}

TEST(SamplerTest, LogprobsAreLogSoftmaxOverWholeVocab) {
  const std::vector<float> l = Logits(300, 6);
  TokenLogprobs lp = ComputeLogprobs(l.data(), 300, 42, 5);
  double total = 0.0;
  for (float x : l) total += std::exp(x);
  EXPECT_NEAR(lp.logprob, l[42] - std::log(total), 1e-4);
  ASSERT_EQ(lp.top.size(), 5u);
  for (size_t i = 1; i < 5; ++i) EXPECT_GE(lp.top[i - 1].second, lp.top[i].second);
}

// A tokenizer whose sampleable ids have gaps and a padded vocabulary.
class GappyTokenizer final : public tokenizer::Tokenizer {
 public:
  absl::string_view kind() const override { return "gappy"; }
  int32_t vocab_size() const override { return 300; }
  int32_t tokenizer_vocab_size() const override { return 258; }
  int32_t bos_id() const override { return 256; }
  int32_t eos_id() const override { return 257; }
  const std::string& model_path() const override { return path_; }
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view) const override {
    return std::vector<int32_t>{};
  }
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t>) const override { return ""; }
  std::string TokenBytes(int32_t) const override { return ""; }
  bool Sampleable(int32_t id) const override { return id == 7 || id == 20 || id == 257; }
  const std::vector<int32_t>& sampleable_ids() const override { return ids_; }
  std::unique_ptr<tokenizer::TextStream> NewStream(bool) const override { return nullptr; }

 private:
  std::string path_;
  std::vector<int32_t> ids_ = {7, 20, 257};
};

TEST(SamplerTest, OnlyTheTokenizersSampleableIdsAreChosen) {
  const GappyTokenizer tok;
  std::vector<float> l = Logits(300, 9);
  l[5] = 100.0f;  // not sampleable
  l[20] = 3.0f;
  l[7] = 3.0f;  // a tie: the lower id wins
  SamplerRng rng(2);
  EXPECT_EQ(SampleToken(l.data(), 300, tok, {0.0f, 1.0f, 0}, rng), 7);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = SampleToken(l.data(), 300, tok, {2.0f, 1.0f, 0}, rng);
    EXPECT_TRUE(t == 7 || t == 20 || t == 257) << t;
  }
}

// Prompt scoring's batched form gives each row what ComputeLogprobs gives.
TEST(SamplerTest, RowLogprobsEqualComputeLogprobsRowByRow) {
  at::manual_seed(3);
  const at::Tensor logits = (at::randn({7, 300}) * 4).contiguous();
  const std::vector<int32_t> chosen = {0, 299, 17, 17, 150, 3, 42};
  const std::vector<TokenLogprobs> rows = RowLogprobs(logits, chosen, 5);
  ASSERT_EQ(rows.size(), 7u);
  for (int64_t j = 0; j < 7; ++j) {
    const TokenLogprobs one =
        ComputeLogprobs(logits[j].data_ptr<float>(), 300, chosen[static_cast<size_t>(j)], 5);
    EXPECT_NEAR(rows[j].logprob, one.logprob, 1e-5) << j;
    ASSERT_EQ(rows[j].top.size(), 5u);
    for (size_t t = 0; t < 5; ++t) {
      EXPECT_EQ(rows[j].top[t].first, one.top[t].first) << j << " " << t;
      EXPECT_NEAR(rows[j].top[t].second, one.top[t].second, 1e-5) << j << " " << t;
    }
  }
  EXPECT_TRUE(RowLogprobs(logits, chosen, 0)[0].top.empty());
}

}  // namespace
}  // namespace mcserve::model
