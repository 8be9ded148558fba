// fla checkpoints (delta_net, gated_deltanet) served with and without MC
// (mc-model.md §10): the server's model against the independent float64
// reference (reference/mcref/fla_model.py, written from fla's equations), at
// every position of a session fed in several requests; prefill against
// token-by-token decoding (fla's own invariant); and a session split at
// every position against one request. The checkpoints are written in fla's
// exact layout at test time by `python3 -m mcref.fla_cases` (the CTest
// fixture fla.make_cases); nothing is committed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/model/mc_model.h"
#include "server/model/safetensors.h"
#include "tests/support/parity_case.h"
#include "tests/support/test_device.h"
#include "tests/support/test_models.h"

#ifndef MCSERVE_FLA_CASES_DIR
#error "MCSERVE_FLA_CASES_DIR must name the directory fla.make_cases writes"
#endif

namespace mcserve {
namespace {

// Every case fla_cases writes (checked against its cases.json).
const char* const kCases[] = {
    "dn_silu_l2_none",
    "dn_silu_l2_residual",
    "dn_silu_l2_mean",
    "dn_silu_l2_grm",
    "dn_silu_l2_ssc",
    "dn_silu_l2_soup_f16",
    "dn_silu_l2_grm_reset",
    "dn_ssc_ties",
    "dn_noconv_gate_tied_relu_negeig_none",
    "dn_conv_gate_elu_negeig_grm",
    "dn_noconv_identity_residual",
    "dn_nobeta_sum_none",
    "dn_nobeta_sum_mean",
    "dn_nobeta_negeig_none",
    "dn_expandv2_grm",
    "gdn_grouped_none",
    "gdn_grouped_ssc",
    "gdn_grouped_uproj_grm",
    "gdn_bf16_sharded_nogate_mean",
    "gdn_noconv_tied_negeig_residual",
};

std::string Dir(const std::string& name) { return absl::StrCat(MCSERVE_FLA_CASES_DIR, "/", name); }

std::vector<int32_t> Slice(const std::vector<int32_t>& v, size_t from, size_t to) {
  return std::vector<int32_t>(v.begin() + from, v.begin() + to);
}

class FlaParityTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::ParityCase> c = testing::ReadParityCase(Dir(GetParam()));
    ASSERT_TRUE(c.ok()) << c.status() << " (run the fla.make_cases test first)";
    case_ = *std::move(c);
    model::ModelOptions opts;
    opts.device = testing::TestDevice();
    opts.prefill_piece = 4;  // several pieces per segment as well
    auto m = model::McModel::Load(Dir(GetParam()), opts);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = *std::move(m);
    ties_ = std::string(GetParam()) == "dn_ssc_ties";
  }

  // Feeds one request. The ties case (summaries tie exactly, so ssc's tie
  // rule decides) is fed token by token: decoding computes every key one row
  // at a time, so equal segments give bit-equal summaries, while a parallel
  // prefill may round equal rows differently in the last bit and decide a
  // tie in exact arithmetic by rounding, as any float model would.
  at::Tensor Feed(testing::SessionDriver& s, const std::vector<int32_t>& tokens, bool parallel) {
    return parallel && !ties_ ? s.PrefillAll(tokens) : s.DecodeEach(tokens);
  }

  testing::ParityCase case_;
  bool ties_ = false;
  std::unique_ptr<model::McModel> model_;
};

TEST_P(FlaParityTest, SessionInSeveralRequestsMatchesReferenceAtEveryPosition) {
  testing::SessionDriver session(model_.get());
  std::vector<at::Tensor> out;
  size_t at = 0;
  for (size_t r = 0; r < case_.splits.size(); ++r) {
    const std::vector<int32_t> part = Slice(case_.tokens, at, at + case_.splits[r]);
    out.push_back(Feed(session, part, case_.modes[r] == 1));
    at += case_.splits[r];
  }
  const at::Tensor got = at::cat(out);
  ASSERT_EQ(got.sizes(), case_.logits.sizes());
  EXPECT_LE(testing::RelError(got, case_.logits), 1e-4);
}

TEST_P(FlaParityTest, PrefillEqualsTokenByTokenDecoding) {
  testing::SessionDriver prefill(model_.get()), decode(model_.get());
  const at::Tensor a = Feed(prefill, case_.tokens, /*parallel=*/true);
  const at::Tensor b = decode.DecodeEach(case_.tokens);
  EXPECT_LE(testing::RelError(a, b), 1e-4);
  EXPECT_LE(testing::RelError(a, case_.logits), 1e-4);
}

TEST_P(FlaParityTest, SessionSplitAtEveryPositionEqualsOneRequest) {
  const size_t T = case_.tokens.size();
  for (size_t split = 1; split < T; ++split) {
    testing::SessionDriver session(model_.get());
    const at::Tensor first = Feed(session, Slice(case_.tokens, 0, split), true);
    const at::Tensor rest = Feed(session, Slice(case_.tokens, split, T), true);
    EXPECT_LE(testing::RelError(at::cat({first, rest}), case_.logits), 1e-4) << "split " << split;
  }
}

TEST_P(FlaParityTest, Bfloat16CheckpointsStayWithinBf16Tolerance) {
  model::ModelOptions opts;
  opts.device = testing::TestDevice();
  opts.ckpt_dtype = model::CkptDtype::kBFloat16;
  auto m = model::McModel::Load(Dir(GetParam()), opts);
  ASSERT_TRUE(m.ok()) << m.status();
  testing::SessionDriver session(m->get());
  EXPECT_LE(testing::RelError(Feed(session, case_.tokens, true), case_.logits), 2e-2);
}

INSTANTIATE_TEST_SUITE_P(AllCases, FlaParityTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

TEST(FlaCasesTest, EveryGeneratedCaseIsTested) {
  std::ifstream in(absl::StrCat(MCSERVE_FLA_CASES_DIR, "/cases.json"));
  ASSERT_TRUE(in) << "run the fla.make_cases test first";
  const nlohmann::json j = nlohmann::json::parse(in);
  std::set<std::string> generated, tested(std::begin(kCases), std::end(kCases));
  for (const auto& c : j.at("cases")) generated.insert(c.at("name").get<std::string>());
  EXPECT_EQ(generated, tested);
}

// A copy of case `name` in a fresh directory, to damage.
std::string CopyCase(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/fla_load_", name, "_", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::copy(Dir(name), dir);
  return dir;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::string LoadError(const std::string& dir, const std::string& mc_config = "") {
  model::ModelOptions opts;
  opts.mc_config = mc_config;
  auto m = model::McModel::Load(dir, opts);
  return m.ok() ? "loaded" : std::string(m.status().message());
}

TEST(FlaLoadTest, AMissingShardIsNamed) {
  const std::string dir = CopyCase("gdn_bf16_sharded_nogate_mean");
  std::filesystem::remove(dir + "/model-00002-of-00003.safetensors");
  EXPECT_THAT(LoadError(dir), ::testing::HasSubstr("lists shard model-00002-of-00003.safetensors"));
}

TEST(FlaLoadTest, AnIndexThatDisagreesWithItsShardsIsRefused) {
  const std::string dir = CopyCase("gdn_bf16_sharded_nogate_mean");
  std::ifstream in(dir + "/model.safetensors.index.json");
  nlohmann::json index = nlohmann::json::parse(in);
  auto& map = index["weight_map"];
  const std::string moved = "model.norm.weight";
  map[moved] = map[moved] == "model-00001-of-00003.safetensors"
                   ? "model-00002-of-00003.safetensors"
                   : "model-00001-of-00003.safetensors";
  WriteFile(dir + "/model.safetensors.index.json", index.dump());
  EXPECT_THAT(LoadError(dir), ::testing::HasSubstr("'model.norm.weight'"));
}

TEST(FlaLoadTest, AMissingTensorIsNamed) {
  const std::string dir = CopyCase("dn_silu_l2_none");
  std::vector<model::StWriteTensor> kept;
  {
    auto f = model::SafetensorsFile::Open(dir + "/model.safetensors");
    ASSERT_TRUE(f.ok()) << f.status();
    for (const auto& [name, t] : (*f)->tensors()) {
      if (name == "model.layers.1.attn.k_conv1d.weight") continue;
      kept.push_back({name, t.shape, model::StToFloat(t), t.dtype});
    }
  }
  ASSERT_TRUE(model::WriteSafetensors(dir + "/model.safetensors", kept).ok());
  EXPECT_THAT(
      LoadError(dir),
      ::testing::HasSubstr("missing tensor 'model.layers.1.attn.k_conv1d.weight' [32, 1, 4]"));
}

TEST(FlaLoadTest, TheRouterFollowsTheCheckpointUnlessTheOverlayNamesOne) {
  const std::string dir = CopyCase("dn_silu_l2_none");
  WriteFile(dir + "/grm.json", R"({"aggregation": "grm", "segment_length": 5})");
  model::ModelOptions opts;
  opts.mc_config = dir + "/grm.json";
  auto m = model::McModel::Load(dir, opts);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->config().aggregation, model::Aggregation::kGrm);
  EXPECT_EQ((*m)->config().router, model::Router::kQuery);  // no u_proj weights
  EXPECT_EQ((*m)->config().mc_source, dir + "/grm.json");
  WriteFile(dir + "/proj.json",
            R"({"aggregation": "grm", "segment_length": 5, "router": "u_proj"})");
  EXPECT_THAT(LoadError(dir, dir + "/proj.json"),
              ::testing::HasSubstr("'router' is 'u_proj' but the checkpoint has no "
                                   "model.layers.0.attn.u_proj.weight"));
  // Router weights a config does not read are accepted and unused.
  WriteFile(dir + "/none.json", R"({"aggregation": "none"})");
  opts.mc_config = dir + "/none.json";
  auto plain = model::McModel::Load(Dir("gdn_grouped_uproj_grm"), opts);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE((*plain)->config().HasGate());
}

TEST(FlaLoadTest, AnOverlayAppliesToFlaCheckpointsOnly) {
  const std::string dir = CopyCase("dn_silu_l2_none");
  WriteFile(dir + "/grm.json", R"({"aggregation": "grm", "segment_length": 5})");
  const std::string mc_lm = testing::FreshDir("fla_load_mclm");
  const model::ModelConfig c = testing::SmallConfig(
      model::MemoryRule::kDelta, false, model::Aggregation::kGrm, 4, model::Boundary::kContinue);
  ASSERT_TRUE(model::WriteRandomModel(c, mc_lm, 1).ok());
  EXPECT_THAT(LoadError(mc_lm, dir + "/grm.json"),
              ::testing::HasSubstr("applies to fla checkpoints only"));
}

}  // namespace
}  // namespace mcserve
