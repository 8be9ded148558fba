// Deep-memory models through the engine: the memory's weights, its momentum
// and the open chunk's rows travel with the rest of a session's state. A
// prefix-cache hit, a fork, an export / import and a round trip of the
// checkpoints through the host tier each continue exactly as the
// uninterrupted session would (same tokens, same log-probabilities to the
// last bit), and every state reference comes back.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/model/weights.h"
#include "tests/support/engine_harness.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

struct DeepCase {
  const char* name;
  model::Aggregation agg;
  model::Boundary boundary;
  int32_t chunk;
  bool momentum;
};

const DeepCase kCases[] = {
    {"grm_continue_b3_mom", model::Aggregation::kGrm, model::Boundary::kContinue, 3, true},
    {"soup_reset_b2_mom", model::Aggregation::kSoup, model::Boundary::kReset, 2, true},
    {"ssc_continue_b1", model::Aggregation::kSsc, model::Boundary::kContinue, 1, false},
    {"none_continue_b3", model::Aggregation::kNone, model::Boundary::kContinue, 3, true},
};

std::string ModelDir(const DeepCase& c) {
  static std::map<std::string, std::string>* dirs = new std::map<std::string, std::string>;
  auto it = dirs->find(c.name);
  if (it != dirs->end()) return it->second;
  model::ModelConfig config =
      SmallConfig(model::MemoryRule::kDelta, true, c.agg, 6, c.boundary, /*top_k=*/2);
  config.memory_kind = model::MemoryKind::kMlp;
  config.deep.expansion = 2;
  config.deep.chunk = c.chunk;
  config.deep.lr_max = 0.5;
  config.deep.momentum = c.momentum;
  const std::string dir = FreshDir(absl::StrCat("deep_", c.name));
  EXPECT_TRUE(model::WriteRandomModel(config, dir, 17).ok());
  return (*dirs)[c.name] = dir;
}

engine::EngineOptions Options(bool prefix_cache) {
  engine::EngineOptions o;
  o.max_sessions = 8;
  o.intra_op_threads = 1;
  o.prefix_cache_bytes = prefix_cache ? (16 << 20) : 0;
  return o;
}

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + salt * 101 + 7) % 256);
  return t;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class DeepEngineTest : public ::testing::TestWithParam<DeepCase> {};

TEST_P(DeepEngineTest, PrefixCacheHitContinuesExactly) {
  EngineHarness cached(ModelDir(GetParam()), Options(true));
  EngineHarness plain(ModelDir(GetParam()), Options(false));
  const std::vector<int32_t> shared = Tokens(3 * 6 + 3, 1);
  ASSERT_TRUE(cached.Generate("", shared, 2).status.ok());
  const std::vector<int32_t> prompt = Concat(shared, Tokens(11, 2));
  const EngineResult hit = cached.Generate("", prompt, 8);
  const EngineResult miss = plain.Generate("", prompt, 8);
  ASSERT_TRUE(hit.status.ok() && miss.status.ok()) << hit.status << miss.status;
  EXPECT_EQ(hit.usage.cached_prompt_tokens, 3 * 6);  // BOS + shared: three whole blocks
  EXPECT_EQ(hit.tokens, miss.tokens);
  EXPECT_EQ(hit.logprobs, miss.logprobs);
  EXPECT_TRUE(cached.AuditState().ok()) << cached.AuditState();
}

TEST_P(DeepEngineTest, ForkAndImportContinueAsTheSessionWould) {
  EngineHarness e(ModelDir(GetParam()), Options(false));
  ASSERT_TRUE(e.CreateSession("s").ok());
  // 1 + 13 + 4 = 18 tokens fed: the session stops inside a chunk of 3 (its
  // pending token is the 19th).
  ASSERT_TRUE(e.Generate("s", Tokens(13, 3), 4).status.ok());
  ASSERT_TRUE(e.ForkSession("s", "f").ok());
  absl::StatusOr<std::string> bytes = e.ExportSession("s");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(e.ImportSession("i", *std::move(bytes)).ok());
  const std::vector<int32_t> next = Tokens(8, 4);
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

TEST_P(DeepEngineTest, CheckpointsOffloadedToTheHostTierReadBackExactly) {
  // Three sessions taking turns, each ending with 8 checkpoints, on 10
  // device slots: every turn fetches the session's checkpoints back from
  // the host tier.
  engine::EngineOptions tiny = Options(false);
  EngineHarness probe(ModelDir(GetParam()), tiny);
  const int64_t ckpt = probe.engine().checkpoint_bytes();
  tiny.checkpoint_pool_bytes = 10 * ckpt;
  tiny.host_pool_bytes = 64 * ckpt;
  EngineHarness tiered(ModelDir(GetParam()), tiny);
  EngineHarness roomy(ModelDir(GetParam()), Options(false));
  for (EngineHarness* e : {&tiered, &roomy}) {
    for (const char* s : {"a", "b", "c"}) ASSERT_TRUE(e->CreateSession(s).ok());
  }
  for (int round = 0; round < 3; ++round) {
    for (const char* s : {"a", "b", "c"}) {
      const std::vector<int32_t> prompt = Tokens(10, round * 3 + s[0]);
      const EngineResult got = tiered.Generate(s, prompt, 6);
      const EngineResult want = roomy.Generate(s, prompt, 6);
      ASSERT_TRUE(got.status.ok() && want.status.ok()) << got.status << want.status;
      EXPECT_EQ(got.tokens, want.tokens);
      EXPECT_EQ(got.logprobs, want.logprobs);
    }
  }
  if (GetParam().agg != model::Aggregation::kNone) {
    const engine::EngineStatus st = tiered.SettledStatus();
    EXPECT_GT(st.evictions.offloads, 0);
    EXPECT_GT(st.evictions.fetches, 0);
    EXPECT_EQ(st.evictions.drops + st.evictions.merges, 0);
  }
  EXPECT_TRUE(tiered.AuditState().ok()) << tiered.AuditState();
}

INSTANTIATE_TEST_SUITE_P(Cases, DeepEngineTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<DeepCase>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace mcserve::testing
