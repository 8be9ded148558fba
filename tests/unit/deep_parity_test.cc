// Deep-memory parity (mc-model.md §9): the server's model (C++ decode and
// chunked prefill on LibTorch) against the independent Python reference
// (reference/mcref), for every aggregation x boundary x chunk size x
// setting of decay, momentum and gradient clipping, on a session fed in
// requests that end inside chunks and cross segment boundaries. The cases
// are written at test time by `python3 -m mcref.deep_cases` (the CTest
// fixture deep.make_cases); nothing is committed.
#include <gtest/gtest.h>

#include <tuple>

#include "absl/strings/str_cat.h"
#include "server/model/mc_model.h"
#include "tests/support/parity_case.h"
#include "tests/support/test_device.h"
#include "tests/support/test_models.h"

#ifndef MCSERVE_DEEP_CASES_DIR
#error "MCSERVE_DEEP_CASES_DIR must name the directory deep.make_cases writes"
#endif

namespace mcserve {
namespace {

std::unique_ptr<model::McModel> Load(const std::string& dir, model::CkptDtype dtype) {
  model::ModelOptions opts;
  opts.device = testing::TestDevice();
  opts.ckpt_dtype = dtype;
  opts.prefill_piece = 4;  // several pieces per segment as well
  auto m = model::McModel::Load(dir, opts);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : nullptr;
}

void ExpectParity(const std::string& name, model::CkptDtype dtype, double tolerance) {
  const std::string dir = absl::StrCat(MCSERVE_DEEP_CASES_DIR, "/", name);
  absl::StatusOr<testing::ParityCase> c = testing::ReadParityCase(dir);
  ASSERT_TRUE(c.ok()) << c.status() << " (run the deep.make_cases test first)";
  auto m = Load(dir, dtype);
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(m->config().is_deep());
  const at::Tensor got = testing::RunParityCase(m.get(), *c);
  ASSERT_EQ(got.sizes(), c->logits.sizes());
  EXPECT_LE(testing::RelError(got, c->logits), tolerance);
}

using Variant = std::tuple<const char*, const char*, const char*, const char*>;

std::string Name(const ::testing::TestParamInfo<Variant>& info) {
  auto [agg, boundary, chunk, setting] = info.param;
  return absl::StrCat("deep_", agg, "_", boundary, "_", chunk, "_", setting);
}

class DeepParityTest : public ::testing::TestWithParam<Variant> {
 protected:
  std::string CaseName() const { return Name({GetParam(), 0}); }
};

// One test per case for both checkpoint dtypes (one process: the suite's
// cost is mostly process start-up).
TEST_P(DeepParityTest, MatchesReferenceWithFloat32AndBfloat16Checkpoints) {
  ExpectParity(CaseName(), model::CkptDtype::kFloat32, 1e-4);
  // bf16 keeps 8 significant bits (relative rounding 2^-9 per element).
  ExpectParity(CaseName(), model::CkptDtype::kBFloat16, 2e-2);
}

INSTANTIATE_TEST_SUITE_P(
    AllVariants, DeepParityTest,
    ::testing::Combine(::testing::Values("none", "residual", "mean", "grm", "soup", "ssc"),
                       ::testing::Values("continue", "reset"), ::testing::Values("b1", "b3"),
                       ::testing::Values("plain", "decay_mom", "mom_clip", "decay_clip")),
    Name);

TEST(DeepParityExtraTest, WiderMemoryMatchesReference) {
  ExpectParity("deep_grm_continue_b2_decay_mom_e4", model::CkptDtype::kFloat32, 1e-4);
}

// Exact ties between checkpoint summaries go to the more recent checkpoint
// (decode path: keys are computed one row at a time, so ties are exact).
TEST(DeepParityExtraTest, SscTiesGoToTheMoreRecentCheckpoint) {
  const std::string dir = absl::StrCat(MCSERVE_DEEP_CASES_DIR, "/deep_ssc_ties");
  absl::StatusOr<testing::ParityCase> c = testing::ReadParityCase(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = Load(dir, model::CkptDtype::kFloat32);
  ASSERT_NE(m, nullptr);
  for (int32_t& mode : c->modes) mode = 0;
  EXPECT_LE(testing::RelError(testing::RunParityCase(m.get(), *c), c->logits), 1e-4);
}

}  // namespace
}  // namespace mcserve
