// `mcserve --model=DIR` on fla checkpoint directories laid out as fla-hub
// publishes them (written by mcref.fla_cases with the tiny SentencePiece
// model as tokenizer.model): the real server over loopback gRPC reports the
// model, generates text through the SentencePiece tokenizer, mcserve-cli
// streams the same text, and bad checkpoints or overlays stop startup with a
// message naming the field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "tests/support/generate_helpers.h"
#include "tests/support/server_process.h"

#ifndef MCSERVE_FLA_CASES_DIR
#error "MCSERVE_FLA_CASES_DIR must name the directory fla.make_cases writes"
#endif
#ifndef MCSERVE_CLI_BIN
#error "MCSERVE_CLI_BIN must name the mcserve-cli binary"
#endif

namespace mcserve::testing {
namespace {

std::string Dir(const std::string& name) { return absl::StrCat(MCSERVE_FLA_CASES_DIR, "/", name); }

TEST(FlaServingTest, ServesAGatedDeltaNetWithMemoryCachingOverGrpc) {
  auto server = ServerProcess::Start(Dir("gdn_grouped_ssc"));
  ASSERT_TRUE(server.ok()) << server.status();
  client::Client& c = (*server)->client();
  absl::StatusOr<v1::ModelInfo> info = c.GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->model_type(), "gated_deltanet");
  EXPECT_EQ(info->vocab_size(), 512u);
  EXPECT_EQ(info->n_heads(), 2u);
  EXPECT_EQ(info->head_dim(), 8u);
  EXPECT_EQ(info->num_v_heads(), 4u);
  EXPECT_EQ(info->head_v_dim(), 16u);
  EXPECT_EQ(info->conv_size(), 4u);
  EXPECT_EQ(info->aggregation(), "ssc");
  EXPECT_EQ(info->segment_length(), 5u);
  EXPECT_EQ(info->top_k(), 2u);
  EXPECT_EQ(info->mc_router(), "query");
  EXPECT_EQ(info->mc_source(), Dir("gdn_grouped_ssc") + "/mc_config.json");
  EXPECT_EQ(info->bos_id(), 1u);
  EXPECT_EQ(info->eos_id(), 2u);

  Completion got = Collect(c, LongRequest("The memory of a recurrent network", 24));
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.tokens.size(), 24u);
  for (uint32_t id : got.tokens) EXPECT_LT(id, 512u);
  EXPECT_FALSE(got.text.empty());
  EXPECT_GT(got.last.usage().prompt_tokens(), 1u);

  // The CLI streams the same text.
  ProcessResult cli =
      RunProgram(MCSERVE_CLI_BIN,
                 {absl::StrCat("--addr=", (*server)->address()), "generate", "--temperature=0",
                  "--max_tokens=24", "--ignore_eos", "The memory of a recurrent network"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(cli.out, got.text + "\n");
}

TEST(FlaServingTest, PlainFlaWithoutAnOverlayAndOneFromTheCommandLine) {
  const std::string overlay = absl::StrCat(::testing::TempDir(), "/fla_serving_mean.json");
  std::ofstream(overlay) << R"({"aggregation": "mean", "segment_length": 7})";
  auto server = ServerProcess::Start(Dir("dn_silu_l2_none"), {"--mc_config=" + overlay});
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<v1::ModelInfo> info = (*server)->client().GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->model_type(), "delta_net");
  EXPECT_EQ(info->aggregation(), "mean");
  EXPECT_EQ(info->segment_length(), 7u);
  EXPECT_EQ(info->mc_source(), overlay);
  EXPECT_EQ(info->mc_router(), "");
  Completion got = Collect((*server)->client(), LongRequest("hello world", 8));
  EXPECT_TRUE(got.status.ok()) << got.status;
}

TEST(FlaServingTest, StartupRefusesWhatItCannotServeNamingTheField) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/fla_serving_hybrid");
  std::filesystem::remove_all(dir);
  std::filesystem::copy(Dir("dn_silu_l2_none"), dir);
  std::ifstream in(dir + "/config.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t at = text.find("\"attn\": null");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 12, R"("attn": {"layers": [1], "num_heads": 2})");
  std::ofstream(dir + "/config.json", std::ios::trunc) << text;
  ProcessResult r = RunServerToExit({"--model=" + dir, "--listen=127.0.0.1:0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("config.json: field 'attn' is set: hybrid softmax-attention layers"),
            std::string::npos)
      << r.output;

  const std::string bad = absl::StrCat(::testing::TempDir(), "/fla_serving_bad.json");
  std::ofstream(bad) << R"({"aggregation": "grm"})";
  r = RunServerToExit(
      {"--model=" + Dir("dn_silu_l2_none"), "--mc_config=" + bad, "--listen=127.0.0.1:0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(bad + ": field 'segment_length' is required"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace mcserve::testing
