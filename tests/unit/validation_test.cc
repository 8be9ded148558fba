#include "server/rpc/validation.h"

#include <gtest/gtest.h>

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
