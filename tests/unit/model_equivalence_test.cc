// mc-model.md §8: the parallel prefill, chunked prefill and token-by-token
// decode compute the same function, for every rule x decay x aggregation x
// boundary.
#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "server/model/span_mixer.h"
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

TEST_P(EquivalenceTest, SpanningPiecesFromAnyPositionEqualDecode) {
  // Pieces of up to two segments on a grid of 10 tokens; requests start
  // inside segments and inside grid cells.
  auto m = testing::MakeModel(Config(), 13, model::CkptDtype::kFloat32, /*prefill_piece=*/10);
  ASSERT_NE(m, nullptr);
  const auto tokens = RandomTokens(47, 3);
  SessionDriver ref(m.get()), mixed(m.get());
  const at::Tensor want = ref.DecodeEach(tokens);
  auto part = [&](int a, int b) {
    return std::vector<int32_t>(tokens.begin() + a, tokens.begin() + b);
  };
  const at::Tensor got = at::cat({mixed.PrefillAll(part(0, 7)), mixed.PrefillAll(part(7, 26)),
                                  mixed.DecodeEach(part(26, 29)), mixed.PrefillAll(part(29, 47))});
  EXPECT_LE(RelError(got, want), 1e-4);
  EXPECT_EQ(mixed.ckpts().size(), ref.ckpts().size());
}

// Random SpanMixer inputs of T tokens for p's heads, n checkpoints held,
// count0 tokens of the open segment before the span.
model::SpanMixerInputs RandomSpan(const kernels::McLayerParams& p, int64_t T, int64_t n,
                                  int64_t count0) {
  const int64_t H = p.n_heads, d = p.head_dim;
  model::SpanMixerInputs in;
  in.q = at::randn({H, T, d});
  in.q = in.q / in.q.norm(2, -1, true);
  in.k = at::randn({H, T, d});
  in.k = in.k / in.k.norm(2, -1, true);
  in.v = at::randn({H, T, d});
  in.u = at::randn({H, T, d});
  if (p.scalar_decay) in.log_alpha = at::log_sigmoid(at::randn({H, T}) + 2);
  if (p.rule == MemoryRule::kDelta) in.beta = at::sigmoid(at::randn({H, T}));
  in.s0 = at::randn({H, d, d}) * 0.1;
  in.ks0 = at::randn({H, d});
  in.count0 = count0;
  in.ckpt = at::randn({H, n, d, d}) * 0.1;
  in.ckpt_summary = at::randn({H, n, d});
  return in;
}

TEST_P(EquivalenceTest, SpanMixerPathsAgree) {
  const kernels::McLayerParams p = Config(3).LayerParams(model::CkptDtype::kFloat32);
  at::manual_seed(5);
  model::SpanMixerInputs in = RandomSpan(p, /*T=*/11, /*n=*/3, /*count0=*/1);
  const model::SpanMixerOutputs loops = model::SpanMixer(p, in);
  in.cpu_loops = false;  // LibTorch's batched ops, as on the GPU
  const model::SpanMixerOutputs whole = model::SpanMixer(p, in);
  in.max_outer_floats = 0;
  const model::SpanMixerOutputs by_segment = model::SpanMixer(p, in);
  EXPECT_LE(RelError(by_segment.o, whole.o), 1e-5);
  EXPECT_TRUE(at::equal(by_segment.s_end, whole.s_end));
  EXPECT_TRUE(at::equal(by_segment.closed_ckpt, whole.closed_ckpt));
  // The CPU's written-out loops compute the same function.
  EXPECT_LE(RelError(loops.o, whole.o), 1e-5);
  EXPECT_LE(RelError(loops.s_end, whole.s_end), 1e-5);
  EXPECT_LE(RelError(loops.closed_ckpt, whole.closed_ckpt), 1e-5);
  EXPECT_TRUE(at::equal(loops.ks_end, whole.ks_end));
  EXPECT_TRUE(at::equal(loops.closed_summary, whole.closed_summary));
}

// The same at head and segment sizes that reach the loops' vector tiles
// (SmallConfig's heads of 8 reach only their scalar edges), with an open
// last segment and bfloat16 checkpoints.
TEST_P(EquivalenceTest, SpanMixerPathsAgreeAtVectorWidths) {
  kernels::McLayerParams p = Config(16).LayerParams(model::CkptDtype::kBFloat16);
  p.head_dim = 48;
  at::manual_seed(6);
  // 45 tokens: segments of 16 close twice, the third stays open.
  model::SpanMixerInputs in = RandomSpan(p, /*T=*/40, /*n=*/2, /*count0=*/5);
  const model::SpanMixerOutputs loops = model::SpanMixer(p, in);
  in.cpu_loops = false;
  const model::SpanMixerOutputs batched = model::SpanMixer(p, in);
  ASSERT_EQ(loops.closed_ckpt.size(0), 2);
  // The closed states agree to float rounding, which can move one of them
  // across a bfloat16 step before the later segments read it.
  EXPECT_LE(RelError(loops.o, batched.o), 1e-3);
  EXPECT_LE(RelError(loops.s_end, batched.s_end), 1e-5);
  EXPECT_LE(RelError(loops.closed_ckpt, batched.closed_ckpt), 1e-5);
  EXPECT_TRUE(at::equal(loops.ks_end, batched.ks_end));
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
