// fla models through the engine: the convolution caches travel with the
// rest of a session's state. A prefix-cache hit, a fork and an export /
// import each continue exactly as the uninterrupted session would (same
// tokens, same log-probabilities to the last bit), with and without MC, and
// every state reference comes back. Uses the fla.make_cases checkpoints.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/support/engine_harness.h"

#ifndef MCSERVE_FLA_CASES_DIR
#error "MCSERVE_FLA_CASES_DIR must name the directory fla.make_cases writes"
#endif

namespace mcserve::testing {
namespace {

std::string Dir(const char* name) { return absl::StrCat(MCSERVE_FLA_CASES_DIR, "/", name); }

engine::EngineOptions Options(bool prefix_cache) {
  engine::EngineOptions o;
  o.max_sessions = 8;
  o.intra_op_threads = 1;
  o.prefix_cache_bytes = prefix_cache ? (16 << 20) : 0;
  return o;
}

// Token ids past bos/eos/unk of the cases' 512-entry vocabulary.
std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(3 + (i * 37 + salt * 101 + 7) % 500);
  return t;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class FlaEngineTest : public ::testing::TestWithParam<const char*> {};

TEST_P(FlaEngineTest, PrefixCacheHitContinuesExactly) {
  EngineHarness cached(Dir(GetParam()), Options(true));
  EngineHarness plain(Dir(GetParam()), Options(false));
  const int32_t block = cached.engine().model().config().segment_length;
  const std::vector<int32_t> shared = Tokens(3 * block + 3, 1);
  ASSERT_TRUE(cached.Generate("", shared, 2).status.ok());
  const std::vector<int32_t> prompt = Concat(shared, Tokens(11, 2));
  const EngineResult hit = cached.Generate("", prompt, 8);
  const EngineResult miss = plain.Generate("", prompt, 8);
  ASSERT_TRUE(hit.status.ok() && miss.status.ok()) << hit.status << miss.status;
  // BOS + shared reaches three whole blocks.
  EXPECT_EQ(hit.usage.cached_prompt_tokens, 3 * block);
  EXPECT_EQ(hit.tokens, miss.tokens);
  EXPECT_EQ(hit.logprobs, miss.logprobs);
  EXPECT_TRUE(cached.AuditState().ok()) << cached.AuditState();
}

TEST_P(FlaEngineTest, ForkAndImportContinueAsTheSessionWould) {
  EngineHarness e(Dir(GetParam()), Options(false));
  ASSERT_TRUE(e.CreateSession("s").ok());
  ASSERT_TRUE(e.Generate("s", Tokens(13, 3), 4).status.ok());
  ASSERT_TRUE(e.ForkSession("s", "f").ok());
  absl::StatusOr<std::string> bytes = e.ExportSession("s");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(e.ImportSession("i", *std::move(bytes)).ok());
  const std::vector<int32_t> next = Tokens(9, 4);
  const EngineResult original = e.Generate("s", next, 6);
  const EngineResult forked = e.Generate("f", next, 6);
  const EngineResult imported = e.Generate("i", next, 6);
  ASSERT_TRUE(original.status.ok() && forked.status.ok() && imported.status.ok());
  EXPECT_EQ(forked.tokens, original.tokens);
  EXPECT_EQ(forked.logprobs, original.logprobs);
  EXPECT_EQ(imported.tokens, original.tokens);
  EXPECT_EQ(imported.logprobs, original.logprobs);
  EXPECT_TRUE(e.AuditState().ok()) << e.AuditState();
}

// Convolution on and off, MC on and off, grouped values.
INSTANTIATE_TEST_SUITE_P(Cases, FlaEngineTest,
                         ::testing::Values("dn_silu_l2_none", "dn_silu_l2_grm",
                                           "dn_noconv_gate_tied_relu_negeig_none",
                                           "gdn_grouped_ssc"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

}  // namespace
}  // namespace mcserve::testing
