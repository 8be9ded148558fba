// mc-model.md §8: the parallel prefill, chunked prefill and token-by-token
// decode compute the same function, for every rule x decay x aggregation x
// boundary.
#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "tests/support/test_models.h"

namespace mcserve {
namespace {

using model::Aggregation;
using model::Boundary;
using model::MemoryRule;
using testing::RandomTokens;
using testing::RelError;
using testing::SessionDriver;

using Variant = std::tuple<MemoryRule, bool, Aggregation, Boundary>;

class EquivalenceTest : public ::testing::TestWithParam<Variant> {
 protected:
  model::ModelConfig Config(int32_t segment_length = 5) const {
    auto [rule, decay, agg, boundary] = GetParam();
    return testing::SmallConfig(rule, decay, agg, segment_length, boundary, /*top_k=*/2);
  }
};

TEST_P(EquivalenceTest, PrefillEqualsTokenByTokenDecode) {
  auto m = testing::MakeModel(Config(), 7);
  ASSERT_NE(m, nullptr);
  const auto tokens = RandomTokens(23, 1);  // crosses four segment boundaries
  SessionDriver one_by_one(m.get()), parallel(m.get());
  const at::Tensor want = one_by_one.DecodeEach(tokens);
  const at::Tensor got = parallel.PrefillAll(tokens);
  EXPECT_LE(RelError(got, want), 1e-4);
  EXPECT_EQ(parallel.ckpts().size(), one_by_one.ckpts().size());
}

TEST_P(EquivalenceTest, ChunkedPrefillThenDecodeEqualsDecode) {
  auto m = testing::MakeModel(Config(), 11, model::CkptDtype::kFloat32, /*prefill_piece=*/3);
  ASSERT_NE(m, nullptr);
  const auto tokens = RandomTokens(30, 2);
  SessionDriver ref(m.get()), mixed(m.get());
  const at::Tensor want = ref.DecodeEach(tokens);
  const std::vector<int32_t> a(tokens.begin(), tokens.begin() + 7);
  const std::vector<int32_t> b(tokens.begin() + 7, tokens.begin() + 19);
  const std::vector<int32_t> c(tokens.begin() + 19, tokens.begin() + 22);
  const std::vector<int32_t> d(tokens.begin() + 22, tokens.end());
  const at::Tensor got =
      at::cat({mixed.PrefillAll(a), mixed.PrefillAll(b), mixed.DecodeEach(c), mixed.PrefillAll(d)});
  EXPECT_LE(RelError(got, want), 1e-4);
}

std::string VariantName(const ::testing::TestParamInfo<Variant>& info) {
  auto [rule, decay, agg, boundary] = info.param;
  return absl::StrCat(model::RuleName(rule), decay ? "_decay_" : "_nodecay_",
                      model::AggregationName(agg), "_", model::BoundaryName(boundary));
}

INSTANTIATE_TEST_SUITE_P(
    AllVariants, EquivalenceTest,
    ::testing::Combine(::testing::Values(MemoryRule::kHebbian, MemoryRule::kDelta),
                       ::testing::Bool(),
                       ::testing::Values(Aggregation::kNone, Aggregation::kResidual,
                                         Aggregation::kMean, Aggregation::kGrm, Aggregation::kSoup,
                                         Aggregation::kSsc),
                       ::testing::Values(Boundary::kContinue, Boundary::kReset)),
    VariantName);

}  // namespace
}  // namespace mcserve
