#include "server/rpc/validation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "server/rpc/tokenize.h"
#include "server/tokenizer/byte_tokenizer.h"

namespace mcserve::rpc {
namespace {

const tokenizer::ByteTokenizer kTok(260, 256, 257);

RequestLimits Limits() {
  RequestLimits l;
  l.vocab_size = 260;
  return l;
}

TEST(ValidationTest, AppliesDocumentedDefaults) {
  RequestLimits limits;
  limits.default_max_tokens = 77;
  v1::GenerateRequest req;
  req.set_text("hi");
  auto r = ValidateGenerate(req, limits, kTok, /*random_seed=*/1234);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, (std::vector<int32_t>{'h', 'i'}));
  EXPECT_FLOAT_EQ(r->params.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r->params.top_p, 1.0f);
  EXPECT_EQ(r->params.top_k, 0);
  EXPECT_EQ(r->params.max_tokens, 77);
  EXPECT_EQ(r->params.seed, 1234u);
  EXPECT_FALSE(r->params.ignore_eos);
  EXPECT_FALSE(r->params.return_logprobs);
  EXPECT_FLOAT_EQ(r->params.repetition_penalty, 1.0f);
  EXPECT_FLOAT_EQ(r->params.presence_penalty, 0.0f);
  EXPECT_FLOAT_EQ(r->params.frequency_penalty, 0.0f);
  EXPECT_EQ(r->params.min_tokens, 0);
  EXPECT_TRUE(r->params.logit_bias.empty());
  EXPECT_FALSE(r->params.include_stop_str_in_output);
}

TEST(ValidationTest, PenaltiesBiasAndMinTokensAreKept) {
  v1::GenerateRequest req;
  v1::SamplingParams& sp = *req.mutable_sampling_params();
  sp.set_repetition_penalty(1.3f);
  sp.set_presence_penalty(-0.5f);
  sp.set_frequency_penalty(2.0f);
  sp.set_max_tokens(10);
  sp.set_min_tokens(10);
  (*sp.mutable_logit_bias())[259] = -100.0f;
  (*sp.mutable_logit_bias())[3] = 2.5f;
  sp.set_include_stop_str_in_output(true);
  auto r = ValidateGenerate(req, Limits(), kTok, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FLOAT_EQ(r->params.repetition_penalty, 1.3f);
  EXPECT_FLOAT_EQ(r->params.presence_penalty, -0.5f);
  EXPECT_FLOAT_EQ(r->params.frequency_penalty, 2.0f);
  EXPECT_EQ(r->params.min_tokens, 10);
  EXPECT_EQ(r->params.logit_bias,
            (std::vector<std::pair<int32_t, float>>{{3, 2.5f}, {259, -100.0f}}));
  EXPECT_TRUE(r->params.include_stop_str_in_output);
}

TEST(ValidationTest, OutOfRangePenaltiesAreRefusedByName) {
  struct Case {
    std::function<void(v1::SamplingParams&)> set;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto& sp) { sp.set_repetition_penalty(0.0f); },
       "sampling_params.repetition_penalty must be in (0, 100], got 0"},
      {[](auto& sp) { sp.set_repetition_penalty(NAN); },
       "sampling_params.repetition_penalty must be in (0, 100], got nan"},
      {[](auto& sp) { sp.set_presence_penalty(2.5f); },
       "sampling_params.presence_penalty must be in [-2, 2], got 2.5"},
      {[](auto& sp) { sp.set_frequency_penalty(-3.0f); },
       "sampling_params.frequency_penalty must be in [-2, 2], got -3"},
      {[](auto& sp) {
         sp.set_max_tokens(4);
         sp.set_min_tokens(5);
       },
       "sampling_params.min_tokens is 5, above max_tokens (4)"},
      {[](auto& sp) { (*sp.mutable_logit_bias())[260] = 1.0f; },
       "sampling_params.logit_bias[260] names a token id not below vocab_size 260"},
      {[](auto& sp) { (*sp.mutable_logit_bias())[7] = 100.5f; },
       "sampling_params.logit_bias[7] must be in [-100, 100], got 100.5"},
      {[](auto& sp) {
         for (uint32_t i = 0; i < 3; ++i) (*sp.mutable_logit_bias())[i] = 1.0f;
       },
       "sampling_params.logit_bias has 3 entries; at most 2 allowed"},
  };
  RequestLimits limits = Limits();
  limits.max_logit_bias = 2;
  for (const Case& c : cases) {
    v1::GenerateRequest req;
    c.set(*req.mutable_sampling_params());
    auto r = ValidateGenerate(req, limits, kTok, 1);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(r.status().message(), c.message);
  }
}

TEST(ValidationTest, ExplicitZeroesAreKept) {
  v1::GenerateRequest req;
  req.mutable_sampling_params()->set_temperature(0.0f);
  req.mutable_sampling_params()->set_max_tokens(0);
  req.mutable_sampling_params()->set_seed(0);
  auto r = ValidateGenerate(req, RequestLimits{}, kTok, 99);
  ASSERT_TRUE(r.ok());
  EXPECT_FLOAT_EQ(r->params.temperature, 0.0f);
  EXPECT_EQ(r->params.max_tokens, 0);
  EXPECT_EQ(r->params.seed, 0u);
  EXPECT_TRUE(r->prompt.empty());
}

TEST(ValidationTest, SessionIdCharset) {
  RequestLimits limits;
  EXPECT_TRUE(ValidateSessionId("user-1:chat.v2_x", limits, "session_id").ok());
  EXPECT_FALSE(ValidateSessionId("", limits, "session_id").ok());
  EXPECT_FALSE(ValidateSessionId("a/b", limits, "session_id").ok());
  EXPECT_FALSE(ValidateSessionId(std::string(129, 'a'), limits, "session_id").ok());
}

TEST(ValidationTest, TextPromptIsEncodedByTheTokenizer) {
  v1::GenerateRequest req;
  req.set_text("h\xC3\xA9");
  auto r = ValidateGenerate(req, Limits(), kTok, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, (std::vector<int32_t>{'h', 0xC3, 0xA9}));
}

TEST(ValidationTest, TokenIdsAreCheckedAgainstTheModelsVocabulary) {
  v1::GenerateRequest req;
  req.mutable_token_ids()->add_ids(259);  // padding: valid input
  req.mutable_token_ids()->add_ids(260);
  absl::Status s = ValidateGenerate(req, Limits(), kTok, 1).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "token_ids.ids[1] = 260 is not below vocab_size 260");
}

TEST(TokenizeTest, TokenizeWithAndWithoutBos) {
  v1::TokenizeRequest req;
  req.set_text("hi");
  v1::TokenizeResponse resp;
  ASSERT_TRUE(Tokenize(kTok, req, resp).ok());
  EXPECT_EQ(std::vector<uint32_t>(resp.ids().begin(), resp.ids().end()),
            (std::vector<uint32_t>{'h', 'i'}));
  req.set_add_bos(true);
  v1::TokenizeResponse with_bos;
  ASSERT_TRUE(Tokenize(kTok, req, with_bos).ok());
  EXPECT_EQ(std::vector<uint32_t>(with_bos.ids().begin(), with_bos.ids().end()),
            (std::vector<uint32_t>{256, 'h', 'i'}));
}

TEST(TokenizeTest, DetokenizeNamesAnIdOutsideTheVocabulary) {
  v1::DetokenizeRequest req;
  for (uint32_t id : {256u, uint32_t{'o'}, uint32_t{'k'}, 257u, 259u}) req.add_ids(id);
  v1::DetokenizeResponse resp;
  ASSERT_TRUE(Detokenize(kTok, Limits(), req, resp).ok());
  EXPECT_EQ(resp.text(), "ok");
  req.add_ids(4000000000u);  // beyond int32 too
  absl::Status s = Detokenize(kTok, Limits(), req, resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "ids[5] = 4000000000 is not below vocab_size 260");
}

TEST(TokenizeTest, DescribesTheTokenizer) {
  v1::TokenizerInfo info;
  DescribeTokenizer(kTok, info);
  EXPECT_EQ(info.kind(), "byte");
  EXPECT_EQ(info.vocab_size(), 258u);
  EXPECT_EQ(info.bos_id(), 256u);
  EXPECT_EQ(info.eos_id(), 257u);
  EXPECT_EQ(info.model_path(), "");
}

}  // namespace
}  // namespace mcserve::rpc
