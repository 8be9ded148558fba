// A deep-memory model trained by the project's trainer (mcref.train
// --memory mlp, the CTest fixture deep.train_model) served by the real
// binary over loopback gRPC: GetModelInfo reports the memory, and the
// greedy completion matches the Python reference's (mcref.greedy, float64)
// token by token, one-shot and as a session continued across requests.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/support/generate_helpers.h"
#include "tests/support/server_process.h"

#ifndef MCSERVE_DEEP_MODEL_DIR
#error "MCSERVE_DEEP_MODEL_DIR must name the directory deep.train_model writes"
#endif

namespace mcserve::testing {
namespace {

struct Expected {
  std::string prompt;
  std::vector<uint32_t> tokens;
  std::string finish;
  double min_margin = 0;
};

Expected ReadExpected(const std::string& path, const std::string& prompt) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path << " (run the deep.greedy test first)";
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  Expected e;
  e.prompt = prompt;
  if (j.is_discarded()) return e;
  e.tokens = j.at("tokens").get<std::vector<uint32_t>>();
  e.finish = j.at("finish").get<std::string>();
  e.min_margin = j.at("min_margin").get<double>();
  return e;
}

// Generated tokens without the eos that ended them.
std::vector<uint32_t> Generated(const Completion& c, uint32_t eos) {
  std::vector<uint32_t> t = c.tokens;
  if (!t.empty() && t.back() == eos) t.pop_back();
  return t;
}

const char* const kPrompt = "@ k=7 m=2 q=9 ? m=";

TEST(DeepServingTest, TrainedDeepModelMatchesTheReferenceTokenByToken) {
  const Expected want = ReadExpected(MCSERVE_DEEP_MODEL_DIR "/greedy.json", kPrompt);
  ASSERT_FALSE(want.tokens.empty() && want.finish.empty());
  // A float32 server and a float64 reference agree on an argmax unless two
  // logits nearly tie; the reference says how close they came.
  EXPECT_GT(want.min_margin, 1e-3);

  auto server = ServerProcess::Start(MCSERVE_DEEP_MODEL_DIR);
  ASSERT_TRUE(server.ok()) << server.status();
  client::Client& c = (*server)->client();
  absl::StatusOr<v1::ModelInfo> info = c.GetModelInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->memory_kind(), "mlp");
  EXPECT_EQ(info->memory_expansion(), 2u);
  EXPECT_EQ(info->memory_chunk(), 2u);
  EXPECT_TRUE(info->memory_momentum());
  EXPECT_EQ(info->aggregation(), "grm");
  // Per layer: 2 heads x (W and Sigma, 2*2*16 x 16 each; key sum 16; 2 rows of 35).
  EXPECT_EQ(info->state_bytes(), 2u * 2 * (2 * 64 * 16 + 16 + 2 * 35) * 4);

  const uint32_t eos = info->eos_id();
  const Completion one_shot = Collect(c, TextRequest(want.prompt, 48));
  ASSERT_TRUE(one_shot.status.ok()) << one_shot.status;
  EXPECT_EQ(Generated(one_shot, eos), want.tokens);
  EXPECT_EQ(one_shot.last.finish_reason(),
            want.finish == "eos" ? v1::FINISH_REASON_EOS : v1::FINISH_REASON_LENGTH);

  // The same prompt fed to a session in three requests (splits inside
  // chunks and segments), then the completion: the same tokens.
  ASSERT_TRUE(c.CreateSession("s").ok());
  const std::string p = want.prompt;
  for (const std::string& part : {p.substr(0, 5), p.substr(5, 6)}) {
    const v1::GenerateRequest feed = TextRequest(part, 0, "s");  // prefill only
    const Completion fed = Collect(c, feed);
    ASSERT_TRUE(fed.status.ok()) << fed.status;
  }
  const Completion rest = Collect(c, TextRequest(p.substr(11), 48, "s"));
  ASSERT_TRUE(rest.status.ok()) << rest.status;
  EXPECT_EQ(Generated(rest, eos), want.tokens);
}

}  // namespace
}  // namespace mcserve::testing
