// mc-model.md parity: the server's model (C++ decode and chunked prefill)
// against the independent Python reference (reference/mcref), for every
// rule x decay x aggregation x boundary, on a session fed in several
// requests that cross several segment boundaries. The cases are written at
// test time by `python3 -m mcref.parity_cases` (the CTest fixture
// parity.make_cases); nothing is committed.
#include <gtest/gtest.h>

#include <filesystem>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "server/model/mc_model.h"
#include "server/model/safetensors.h"
#include "tests/support/parity_case.h"
#include "tests/support/test_device.h"
#include "tests/support/test_models.h"

#ifndef MCSERVE_PARITY_DIR
#error "MCSERVE_PARITY_DIR must name the directory parity.make_cases writes"
#endif

namespace mcserve {
namespace {

using Variant = std::tuple<const char*, const char*, const char*, const char*>;

class ParityTest : public ::testing::TestWithParam<Variant> {
 protected:
  std::string Dir() const {
    auto [rule, decay, agg, boundary] = GetParam();
    return absl::StrCat(MCSERVE_PARITY_DIR, "/", rule, "_", decay, "_", agg, "_", boundary);
  }
  std::unique_ptr<model::McModel> Load(model::CkptDtype dtype) const {
    model::ModelOptions opts;
    opts.device = testing::TestDevice();
    opts.ckpt_dtype = dtype;
    opts.prefill_piece = 4;  // several pieces per segment as well
    auto m = model::McModel::Load(Dir(), opts);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *std::move(m) : nullptr;
  }
};

TEST_P(ParityTest, Float32CheckpointsMatchReferenceTo1e4) {
  absl::StatusOr<testing::ParityCase> c = testing::ReadParityCase(Dir());
  ASSERT_TRUE(c.ok()) << c.status() << " (run the parity.make_cases test first)";
  auto m = Load(model::CkptDtype::kFloat32);
  ASSERT_NE(m, nullptr);
  const at::Tensor got = testing::RunParityCase(m.get(), *c);
  ASSERT_EQ(got.sizes(), c->logits.sizes());
  EXPECT_LE(testing::RelError(got, c->logits), 1e-4);
}

TEST_P(ParityTest, Bfloat16CheckpointsStayWithinBf16Tolerance) {
  absl::StatusOr<testing::ParityCase> c = testing::ReadParityCase(Dir());
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = Load(model::CkptDtype::kBFloat16);
  ASSERT_NE(m, nullptr);
  const at::Tensor got = testing::RunParityCase(m.get(), *c);
  ASSERT_EQ(got.sizes(), c->logits.sizes());
  // bf16 keeps 8 significant bits (relative rounding 2^-9 per element).
  EXPECT_LE(testing::RelError(got, c->logits), 2e-2);
}

// Exact ties between checkpoint summaries: the more recent checkpoint wins.
// Checked on the decode path, which computes every key one row at a time so
// equal segments give bit-equal summaries. (In a parallel prefill, batched
// matrix products may round equal rows differently in the last bit, so a tie
// in exact arithmetic is decided there by rounding, as in any float model.)
TEST(ParityTiesTest, SscTiesGoToTheMoreRecentCheckpoint) {
  const std::string dir = absl::StrCat(MCSERVE_PARITY_DIR, "/ssc_ties");
  absl::StatusOr<testing::ParityCase> c = testing::ReadParityCase(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  auto m = model::McModel::Load(dir, {});
  ASSERT_TRUE(m.ok()) << m.status();
  for (int32_t& mode : c->modes) mode = 0;
  EXPECT_LE(testing::RelError(testing::RunParityCase(m->get(), *c), c->logits), 1e-4);
}

std::string Name(const ::testing::TestParamInfo<Variant>& info) {
  auto [rule, decay, agg, boundary] = info.param;
  return absl::StrCat(rule, "_", decay, "_", agg, "_", boundary);
}

INSTANTIATE_TEST_SUITE_P(
    AllVariants, ParityTest,
    ::testing::Combine(::testing::Values("hebbian", "delta"), ::testing::Values("nodecay", "decay"),
                       ::testing::Values("none", "residual", "mean", "grm", "soup", "ssc"),
                       ::testing::Values("continue", "reset")),
    Name);

}  // namespace
}  // namespace mcserve
