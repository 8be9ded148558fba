// Deep memory (mc-model.md §9) in the C++ model: the closed-form gradient
// against LibTorch's autograd, the write rule, and decode, chunked prefill
// and split sessions computing one function for every aggregation x
// boundary x chunk x (decay, momentum, clip). Parity with the Python
// reference is deep_parity_test.
#include "server/model/deep_memory.h"

#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "tests/support/test_models.h"

namespace mcserve {
namespace {

using model::Aggregation;
using model::Boundary;
using testing::RandomTokens;
using testing::RelError;
using testing::SessionDriver;

TEST(DeepMemoryMathTest, ClosedFormGradientMatchesAutograd) {
  at::manual_seed(3);
  const int64_t B = 2, H = 3, b = 5, d = 4, hid = 8;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor w1 = (at::randn({B, H, d, hid}, f64) * 0.5).requires_grad_();
  at::Tensor w2 = (at::randn({B, H, hid, d}, f64) * 0.5).requires_grad_();
  const at::Tensor gamma = at::rand({H, d}, f64) + 0.2;
  const at::Tensor k = at::randn({B, H, b, d}, f64), v = at::randn({B, H, b, d}, f64);
  const at::Tensor theta = at::rand({B, H, b}, f64);
  const at::Tensor packed = model::PackDeepMemory(w1, w2);
  const at::Tensor err = model::DeepRead(packed, gamma, k, hid) - v;
  (0.5 * theta * err.square().sum(-1)).sum().backward();
  const at::Tensor g = model::DeepGradient(packed.detach(), gamma, k, v, theta, hid);
  EXPECT_LE((model::DeepW1(g, hid) - w1.grad()).abs().max().item<double>(), 1e-12);
  EXPECT_LE((model::DeepW2(g, hid) - w2.grad()).abs().max().item<double>(), 1e-12);
  EXPECT_GT(w1.grad().abs().max().item<double>(), 1e-3);  // not trivially zero
}

TEST(DeepMemoryMathTest, PackingKeepsBothMatrices) {
  const at::Tensor w1 = at::arange(2 * 3 * 6, at::kFloat).view({2, 3, 6});
  const at::Tensor w2 = -at::arange(2 * 6 * 3, at::kFloat).view({2, 6, 3});
  const at::Tensor p = model::PackDeepMemory(w1, w2);
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{2, 12, 3}));
  EXPECT_TRUE(at::equal(model::DeepW1(p, 6), w1));
  EXPECT_TRUE(at::equal(model::DeepW2(p, 6), w2));
}

TEST(DeepMemoryMathTest, WriteIsGradientStepMomentumDecayAndClip) {
  at::manual_seed(5);
  const int64_t H = 2, d = 3, hid = 6;
  const at::Tensor w = at::randn({H, 2 * hid, d}), g = at::randn({H, 2 * hid, d}) * 10;
  model::DeepMemoryConfig cfg;
  // Plain: one step of gradient descent.
  EXPECT_TRUE(at::allclose(model::DeepWrite(cfg, w, g, {}, {}, nullptr, hid), w - g));
  // Decay and momentum: Sigma <- eta Sigma - g; W <- rho W + Sigma.
  const at::Tensor rho = at::full({H}, 0.9), eta = at::full({H}, 0.5);
  at::Tensor sigma = at::ones({H, 2 * hid, d});
  const at::Tensor got = model::DeepWrite(cfg, w, g, rho, eta, &sigma, hid);
  EXPECT_TRUE(at::allclose(sigma, 0.5 - g));
  EXPECT_TRUE(at::allclose(got, 0.9 * w + 0.5 - g));
  // Clip: each half of each head's step has Frobenius norm <= grad_clip.
  cfg.grad_clip = 0.25;
  const at::Tensor step = w - model::DeepWrite(cfg, w, g, {}, {}, nullptr, hid);
  for (const at::Tensor& half : step.split(hid, -2)) {
    const at::Tensor norms = half.square().sum({-2, -1}).sqrt();
    EXPECT_TRUE(at::allclose(norms, at::full({H}, 0.25), 1e-4, 1e-5)) << norms;
  }
}

// aggregation, boundary, chunk, setting (0 plain, 1 decay+momentum,
// 2 momentum+clip, 3 decay+clip)
using Variant = std::tuple<Aggregation, Boundary, int32_t, int>;

model::ModelConfig DeepConfig(Aggregation agg, Boundary boundary, int32_t chunk, int setting,
                              int32_t segment_length = 6) {
  const bool decay = setting == 1 || setting == 3;
  model::ModelConfig c =
      testing::SmallConfig(model::MemoryRule::kDelta, decay, agg, segment_length, boundary, 2);
  c.memory_kind = model::MemoryKind::kMlp;
  c.deep.expansion = 2;
  c.deep.chunk = chunk;
  c.deep.lr_max = 0.5;
  c.deep.momentum = setting == 1 || setting == 2;
  c.deep.grad_clip = setting >= 2 ? 0.05 : 0.0;
  return c;
}

std::string VariantName(const ::testing::TestParamInfo<Variant>& i) {
  static const char* kSettings[] = {"plain", "decay_mom", "mom_clip", "decay_clip"};
  return absl::StrCat(model::AggregationName(std::get<0>(i.param)), "_",
                      model::BoundaryName(std::get<1>(i.param)), "_b", std::get<2>(i.param), "_",
                      kSettings[std::get<3>(i.param)]);
}

class DeepEquivalenceTest : public ::testing::TestWithParam<Variant> {
 protected:
  model::ModelConfig Config() const {
    auto [agg, boundary, chunk, setting] = GetParam();
    return DeepConfig(agg, boundary, chunk, setting);
  }
};

TEST_P(DeepEquivalenceTest, PrefillAndSplitSessionsEqualTokenByTokenDecode) {
  const std::vector<int32_t> tokens = RandomTokens(31, 11);
  auto decode_model = testing::MakeModel(Config(), 7);
  auto piece_model = testing::MakeModel(Config(), 7, model::CkptDtype::kFloat32, 4);
  ASSERT_NE(decode_model, nullptr);
  ASSERT_NE(piece_model, nullptr);
  SessionDriver one(decode_model.get());
  const at::Tensor want = one.DecodeEach(tokens);
  SessionDriver all(decode_model.get());
  EXPECT_LE(RelError(all.PrefillAll(tokens), want), 1e-4);
  // Requests that end inside chunks, fed alternately in parallel and token
  // by token, in pieces of 4.
  SessionDriver split(piece_model.get());
  std::vector<at::Tensor> parts;
  size_t at = 0;
  int mode = 0;
  for (int n : {7, 4, 11, 1, 8}) {
    const std::vector<int32_t> part(tokens.begin() + at, tokens.begin() + at + n);
    parts.push_back(mode++ % 2 == 0 ? split.PrefillAll(part) : split.DecodeEach(part));
    at += n;
  }
  EXPECT_LE(RelError(at::cat(parts), want), 1e-4);
  EXPECT_EQ(split.ckpts().size(), one.ckpts().size());
}

INSTANTIATE_TEST_SUITE_P(
    All, DeepEquivalenceTest,
    ::testing::Combine(::testing::Values(Aggregation::kNone, Aggregation::kResidual,
                                         Aggregation::kMean, Aggregation::kGrm, Aggregation::kSoup,
                                         Aggregation::kSsc),
                       ::testing::Values(Boundary::kContinue, Boundary::kReset),
                       ::testing::Values(1, 3), ::testing::Values(0, 1, 2, 3)),
    VariantName);

// Soup mixes the memories, grm the reads: equal for a matrix memory, not
// for an MLP (same weights, same gates).
TEST(DeepMemoryModelTest, SoupDiffersFromGrmAndSscWithLargeKEqualsGrm) {
  const std::vector<int32_t> tokens = RandomTokens(30, 3);
  auto logits = [&](Aggregation agg, int32_t top_k) {
    model::ModelConfig c = DeepConfig(agg, Boundary::kContinue, 2, 1);
    c.top_k = agg == Aggregation::kSsc ? top_k : 0;
    auto m = testing::MakeModel(c, 9);
    SessionDriver s(m.get());
    return s.PrefillAll(tokens);
  };
  const at::Tensor grm = logits(Aggregation::kGrm, 0);
  EXPECT_GT(RelError(logits(Aggregation::kSoup, 0), grm), 1e-3);
  EXPECT_LE(RelError(logits(Aggregation::kSsc, 8), grm), 1e-6);  // 5 checkpoints <= 8
  EXPECT_GT(RelError(logits(Aggregation::kSsc, 1), grm), 1e-4);
}

// With aggregation none and segments longer than the text, a deep model is
// its plain recurrence; reset puts the learned initial weights back.
TEST(DeepMemoryModelTest, ResetRestoresTheInitialMemory) {
  model::ModelConfig c = DeepConfig(Aggregation::kGrm, Boundary::kReset, 3, 1);
  auto m = testing::MakeModel(c, 4);
  SessionDriver s(m.get());
  const at::Tensor initial = s.cache().online[model::McModel::kMemory][0].clone();
  s.PrefillAll(RandomTokens(5, 1));
  EXPECT_FALSE(at::equal(s.cache().online[model::McModel::kMemory][0], initial));
  s.DecodeEach(RandomTokens(1, 2));  // the segment's 6th token: reset
  EXPECT_TRUE(at::equal(s.cache().online[model::McModel::kMemory][0], initial));
  EXPECT_TRUE(at::equal(initial.select(0, 1), m->weights().layers[1].mem_init));
}

TEST(DeepMemoryModelTest, StateAndCheckpointSizes) {
  model::ModelConfig c = DeepConfig(Aggregation::kGrm, Boundary::kContinue, 3, 1);
  auto m = testing::MakeModel(c, 4);
  // Per layer and head: W and Sigma 2*E*d*d each, key sum d, 3 rows of 2d+3.
  const int64_t per_head = 2 * (2 * 2 * 8 * 8) + 8 + 3 * (2 * 8 + 3);
  EXPECT_EQ(m->state_bytes(), 2 * 2 * per_head * 4);
  EXPECT_EQ(m->checkpoint_bytes(), 2 * 2 * (2 * 2 * 8 * 8 + 8) * 4);
  EXPECT_EQ(m->boundary_state(), model::BoundaryState::kStored);
}

}  // namespace
}  // namespace mcserve
