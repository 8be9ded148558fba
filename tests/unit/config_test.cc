#include "server/model/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace mcserve::model {
namespace {

nlohmann::json Base() {
  return nlohmann::json::parse(R"({
    "model_type": "mc-lm", "vocab_size": 260, "d_model": 32, "n_layers": 2, "n_heads": 2,
    "head_dim": 8, "d_ff": 48, "tie_embeddings": true,
    "memory": {"rule": "delta", "decay": "scalar"},
    "mc": {"aggregation": "ssc", "segment_length": 16, "top_k": 2, "boundary": "reset"},
    "tokenizer": {"type": "byte", "bos_id": 256, "eos_id": 257}})");
}

absl::Status Parse(const nlohmann::json& j) { return ModelConfig::FromJson(j.dump()).status(); }

void ExpectError(const nlohmann::json& j, const std::string& part) {
  absl::Status s = Parse(j);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(part), std::string::npos) << s;
}

TEST(ConfigTest, ParsesEveryFieldAndDefaults) {
  auto c = ModelConfig::FromJson(Base().dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rule, MemoryRule::kDelta);
  EXPECT_TRUE(c->scalar_decay);
  EXPECT_EQ(c->aggregation, Aggregation::kSsc);
  EXPECT_EQ(c->top_k, 2);
  EXPECT_EQ(c->boundary, Boundary::kReset);
  EXPECT_EQ(c->segment_length, 16);
  EXPECT_DOUBLE_EQ(c->rms_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->gate_scale, 1.0);
  EXPECT_TRUE(c->HasGate());
}

TEST(ConfigTest, RoundTripsThroughToJson) {
  auto c = ModelConfig::FromJson(Base().dump());
  ASSERT_TRUE(c.ok());
  auto again = ModelConfig::FromJson(c->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToJson(), c->ToJson());
}

TEST(ConfigTest, DeepMemoryParsesWithItsDefaultsAndRoundTrips) {
  auto j = Base();
  j["memory"] = {{"kind", "mlp"}, {"rule", "delta"}, {"decay", "none"}, {"lr_max", 0.25}};
  auto c = ModelConfig::FromJson(j.dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->is_deep());
  EXPECT_EQ(c->deep.expansion, 4);
  EXPECT_EQ(c->deep.chunk, 1);
  EXPECT_TRUE(c->deep.momentum);
  EXPECT_DOUBLE_EQ(c->deep.grad_clip, 0.0);
  EXPECT_DOUBLE_EQ(c->deep.lr_max, 0.25);
  EXPECT_EQ(c->ckpt_rows(), 2 * 4 * 8);  // W1 and W2 packed: 2 E d rows of d
  auto again = ModelConfig::FromJson(c->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToJson(), c->ToJson());
  // A linear memory says nothing new: files written before deep memory are unchanged.
  auto linear = ModelConfig::FromJson(Base().dump());
  ASSERT_TRUE(linear.ok());
  EXPECT_EQ(linear->ToJson().find("kind"), std::string::npos);
  EXPECT_EQ(linear->ckpt_rows(), 8);
}

TEST(ConfigTest, EveryAggregationValueParses) {
  for (const char* a : {"none", "residual", "mean", "grm", "soup", "ssc"}) {
    auto j = Base();
    j["mc"]["aggregation"] = a;
    auto c = ModelConfig::FromJson(j.dump());
    ASSERT_TRUE(c.ok()) << a << ": " << c.status();
    EXPECT_EQ(AggregationName(c->aggregation), a);
  }
}

TEST(ConfigTest, RejectsBadValuesNamingTheField) {
  auto j = Base();
  j["mc"]["aggregation"] = "attention";
  ExpectError(j, "field 'mc.aggregation' has unknown value 'attention'");
  j = Base();
  j["mc"]["top_k"] = 0;
  ExpectError(j, "field 'mc.top_k' must be in [1");
  j = Base();
  j["mc"]["segment_length"] = 0;
  ExpectError(j, "field 'mc.segment_length'");
  j = Base();
  j["memory"]["rule"] = "oja";
  ExpectError(j, "field 'memory.rule' has unknown value 'oja'");
  j = Base();
  j["memory"]["kind"] = "matrix";
  ExpectError(j, "field 'memory.kind' has unknown value 'matrix'");
  j = Base();
  j["memory"]["kind"] = "mlp";
  ExpectError(j, "field 'memory.lr_max' is required");
  j["memory"]["lr_max"] = 0;
  ExpectError(j, "field 'memory.lr_max' must be a finite number > 0");
  j["memory"]["lr_max"] = 0.5;
  j["memory"]["chunk"] = 3;  // segment_length 16 in Base()
  ExpectError(j, "field 'memory.chunk' must divide mc.segment_length");
  j["memory"]["chunk"] = 2;
  j["memory"]["grad_clip"] = -1;
  ExpectError(j, "field 'memory.grad_clip' must be >= 0");
  j["memory"]["grad_clip"] = 0;
  j["memory"]["rule"] = "hebbian";
  ExpectError(j, "field 'memory.rule' must be 'delta' for memory.kind 'mlp'");
  j = Base();
  j["memory"]["expansion"] = 4;  // a deep-memory field on a linear memory
  ExpectError(j, "field 'memory.expansion' is not a known config field");
  j = Base();
  j["vocab_size"] = 100;
  ExpectError(j, "field 'vocab_size'");
  j = Base();
  j["d_model"] = "32";
  ExpectError(j, "field 'd_model' must be an integer");
  j = Base();
  j.erase("n_heads");
  ExpectError(j, "field 'n_heads' is required");
  j = Base();
  j["mc"]["segment_len"] = 4;
  ExpectError(j, "field 'mc.segment_len' is not a known config field");
  j = Base();
  j["tokenizer"]["type"] = "bpe";
  ExpectError(j, "field 'tokenizer.type' has unknown value 'bpe'");
  j = Base();
  j["tokenizer"]["eos_id"] = 256;
  ExpectError(j, "must differ from bos_id");
  ExpectError(nlohmann::json::array(), "must be a JSON object");
  EXPECT_NE(ModelConfig::FromJson("{not json").status().message().find("not valid JSON"),
            std::string::npos);
}

}  // namespace
}  // namespace mcserve::model
