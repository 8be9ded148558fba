// Engine::Create loads the model's tokenizer: a failure is its status.
#include <gtest/gtest.h>

#include "server/engine/engine.h"
#include "tests/support/spm_golden.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

model::ModelConfig Config() {
  model::ModelConfig c = SmallConfig(model::MemoryRule::kDelta, true, model::Aggregation::kGrm,
                                     /*segment_length=*/8, model::Boundary::kContinue);
  c.vocab_size = 512;
  return c;
}

engine::EngineOptions Options(const std::string& tokenizer_model) {
  engine::EngineOptions o;
  o.max_sessions = 2;
  o.max_running = 2;
  o.intra_op_threads = 1;
  o.tokenizer_model = tokenizer_model;
  return o;
}

TEST(EngineTokenizerTest, MissingTokenizerModelFailsCreateWithNotFound) {
  const std::string path = ::testing::TempDir() + "/absent/tokenizer.model";
  auto engine = engine::Engine::Create(MakeModel(Config(), 3), Options(path), Clock::Real());
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(engine.status().message().find(path), absl::string_view::npos) << engine.status();
}

TEST(EngineTokenizerTest, EngineServesTheTokenizerItLoaded) {
  auto engine =
      engine::Engine::Create(MakeModel(Config(), 3), Options(SpmModelPath()), Clock::Real());
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->tokenizer().kind(), "sentencepiece");
  EXPECT_EQ((*engine)->tokenizer().vocab_size(), 512);
  auto plain = engine::Engine::Create(MakeModel(Config(), 3), Options(""), Clock::Real());
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->tokenizer().kind(), "byte");
}

}  // namespace
}  // namespace mcserve::testing
