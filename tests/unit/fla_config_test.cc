// fla config.json and MC overlay parsing (server/model/fla_config.h): the
// published delta_net-1.3B config, grouped GatedDeltaNet values, and every
// feature the server does not implement refused with the field named.
#include "server/model/fla_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace mcserve::model {
namespace {

using Json = nlohmann::json;

// fla-hub/delta_net-1.3B-100B's config as fla's save_pretrained writes it.
Json DeltaNet13B() {
  return Json::parse(R"({
    "allow_neg_eigval": false, "architectures": ["DeltaNetForCausalLM"], "attn": null,
    "attn_mode": "chunk", "attnres_block_size": null, "bos_token_id": 1, "conv_size": 4,
    "eos_token_id": 2, "expand_k": 1, "expand_v": 1, "fuse_cross_entropy": true,
    "fuse_linear_cross_entropy": false, "fuse_norm": true, "fuse_swiglu": true,
    "hidden_act": "swish", "hidden_ratio": 4, "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": null, "max_position_embeddings": 2048, "model_type": "delta_net",
    "norm_eps": 1e-06, "num_heads": 16, "num_hidden_layers": 24, "qk_activation": "silu",
    "qk_norm": "l2", "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "transformers_version": "4.53.2", "use_beta": true, "use_cache": true, "use_gate": false,
    "use_l2warp": false, "use_output_norm": true, "use_short_conv": true, "vocab_size": 32000})");
}

Json Gdn() {
  return Json::parse(R"({"model_type": "gated_deltanet", "hidden_size": 64, "num_heads": 2,
    "num_v_heads": 4, "head_dim": 16, "expand_v": 2.0, "num_hidden_layers": 2,
    "vocab_size": 512, "intermediate_size": 96, "hidden_ratio": 4})");
}

void ExpectError(const Json& j, const std::string& needle) {
  absl::StatusOr<ModelConfig> c = ParseFlaConfig(j.dump());
  ASSERT_FALSE(c.ok()) << j.dump();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status();
}

TEST(FlaConfigTest, ReadsTheDeltaNet13BConfig) {
  absl::StatusOr<ModelConfig> c = ParseFlaConfig(DeltaNet13B().dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family, ModelFamily::kDeltaNet);
  EXPECT_EQ(c->n_layers, 24);
  EXPECT_EQ(c->n_heads, 16);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->value_dim(), 128);
  EXPECT_EQ(c->state_heads(), 16);
  EXPECT_EQ(c->d_ff, 5632);  // 256 * ceil(int(2048 * 4 * 2 / 3) / 256)
  EXPECT_EQ(c->fla.conv_size, 4);
  EXPECT_FALSE(c->fla.use_gate);
  EXPECT_FALSE(c->tie_embeddings);
  EXPECT_EQ(c->bos_id, 1);
  EXPECT_EQ(c->eos_id, 2);
  EXPECT_EQ(c->aggregation, Aggregation::kNone);
  EXPECT_EQ(c->tokenizer, TokenizerKind::kSentencePiece);
  EXPECT_FALSE(c->scalar_decay);
}

TEST(FlaConfigTest, AcceptsWhatOlderAndNewerSavesAddWithoutChangingTheModel) {
  Json j = DeltaNet13B();
  j["norm_first"] = false;  // fla before 2025
  j["_attn_implementation_autoset"] = true;
  j["_name_or_path"] = "fla-hub/delta_net-1.3B-100B";
  EXPECT_TRUE(ParseFlaConfig(j.dump()).ok()) << ParseFlaConfig(j.dump()).status();
}

TEST(FlaConfigTest, GatedDeltaNetHasGroupedValueHeadsAndDecay) {
  absl::StatusOr<ModelConfig> c = ParseFlaConfig(Gdn().dump());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family, ModelFamily::kGatedDeltaNet);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->value_dim(), 32);
  EXPECT_EQ(c->state_heads(), 4);
  EXPECT_EQ(c->key_width(), 32);
  EXPECT_EQ(c->value_width(), 128);
  EXPECT_TRUE(c->fla.use_gate);  // fla's GatedDeltaNet default
  EXPECT_TRUE(c->scalar_decay);
  EXPECT_EQ(c->d_ff, 96);
}

TEST(FlaConfigTest, RefusesWhatTheServerDoesNotImplement) {
  Json j = DeltaNet13B();
  j["attn"] = Json::parse(R"({"layers": [1], "num_heads": 16})");
  ExpectError(j, "field 'attn' is set: hybrid softmax-attention layers");
  j = DeltaNet13B();
  j["attnres_block_size"] = 2;
  ExpectError(j, "field 'attnres_block_size' is set");
  j = DeltaNet13B();
  j["hidden_act"] = "powlu";
  ExpectError(j, "field 'hidden_act' has unknown value 'powlu'");
  j = DeltaNet13B();
  j["qk_activation"] = "tanh";
  ExpectError(j, "field 'qk_activation' has unknown value 'tanh'");
  j = DeltaNet13B();
  j["qk_norm"] = "rms";
  ExpectError(j, "field 'qk_norm'");
  j = DeltaNet13B();
  j["norm_first"] = true;
  ExpectError(j, "field 'norm_first' is true");
  j = DeltaNet13B();
  j["norm_layer"] = "layernorm";
  ExpectError(j, "field 'norm_layer' is not a known config field");
  j = DeltaNet13B();
  j["hidden_size"] = 1 << 30;
  ExpectError(j, "width above");
  j = DeltaNet13B();
  j["expand_k"] = 0.3;
  ExpectError(j, "field 'expand_k' gives a non-integer width");
  j = DeltaNet13B();
  j["eos_token_id"] = Json::array({2, 3});
  ExpectError(j, "field 'eos_token_id' must be an integer");
  j = DeltaNet13B();
  j["eos_token_id"] = 40000;
  ExpectError(j, "eos_token_id");
  j = Gdn();
  j["num_v_heads"] = 3;
  ExpectError(j, "field 'num_v_heads' must be a multiple of num_heads (2), got 3");
  j = Gdn();
  j["num_v_heads"] = 1;
  ExpectError(j, "field 'num_v_heads'");
  j = DeltaNet13B();
  j["model_type"] = "gla";
  ExpectError(j, "field 'model_type' has unknown value 'gla'");
}

absl::StatusOr<std::optional<Router>> Overlay(ModelConfig& c, const std::string& text) {
  return ApplyMcOverlay(text, "/m/mc_config.json", c);
}

TEST(FlaConfigTest, OverlaySetsMemoryCaching) {
  ModelConfig c = *ParseFlaConfig(DeltaNet13B().dump());
  auto r = Overlay(c, R"({"aggregation": "ssc", "segment_length": 256, "top_k": 4,
                          "router": "query", "gate_scale": 2.0})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, Router::kQuery);
  EXPECT_EQ(c.aggregation, Aggregation::kSsc);
  EXPECT_EQ(c.segment_length, 256);
  EXPECT_EQ(c.top_k, 4);
  EXPECT_EQ(c.boundary, Boundary::kContinue);  // the default for imported models
  EXPECT_EQ(c.gate_scale, 2.0);
  EXPECT_EQ(c.mc_source, "/m/mc_config.json");
  ModelConfig m = *ParseFlaConfig(DeltaNet13B().dump());
  r = Overlay(m, R"({"aggregation": "mean", "segment_length": 64})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_value());  // the router follows the checkpoint
}

TEST(FlaConfigTest, OverlayErrorsNameTheFileAndField) {
  struct Bad {
    const char* text;
    const char* needle;
  } cases[] = {
      {R"({"aggregation": "grm"})", "/m/mc_config.json: field 'segment_length' is required"},
      {R"({"aggregation": "ssc", "segment_length": 8})", "field 'top_k' must be >= 1 for ssc"},
      {R"({"aggregation": "max", "segment_length": 8})", "field 'aggregation' has unknown value"},
      {R"({"aggregation": "grm", "segment_length": 8, "router": "key"})", "field 'router'"},
      {R"({"aggregation": "grm", "segment_length": 8, "chunk": 2})",
       "field 'chunk' is not a known config field"},
      {R"({"aggregation": "grm", "segment_length": 0})", "field 'segment_length' must be in"},
      {"[1, 2]", "/m/mc_config.json: must be a JSON object"},
  };
  for (const Bad& b : cases) {
    ModelConfig c = *ParseFlaConfig(DeltaNet13B().dump());
    auto r = Overlay(c, b.text);
    ASSERT_FALSE(r.ok()) << b.text;
    EXPECT_NE(r.status().message().find(b.needle), std::string::npos) << r.status();
  }
}

TEST(FlaConfigTest, GatedAggregationNeedsL2Keys) {
  Json j = DeltaNet13B();
  j["qk_norm"] = "sum";
  ModelConfig c = *ParseFlaConfig(j.dump());
  auto r = Overlay(c, R"({"aggregation": "grm", "segment_length": 8})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("qk_norm 'sum'"), std::string::npos) << r.status();
  ModelConfig m = *ParseFlaConfig(j.dump());
  EXPECT_TRUE(Overlay(m, R"({"aggregation": "mean", "segment_length": 8})").ok());
}

}  // namespace
}  // namespace mcserve::model
