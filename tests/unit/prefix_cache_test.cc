// The prefix cache through the engine: a request that starts from cached
// segment-boundary states gives what a full prefill gives (bit for bit when
// the boundary came from the same prefill path), for every aggregation,
// both boundaries and both checkpoint types; it reports the cached tokens;
// it gives way before any session's checkpoint is offloaded; lossy and
// imported sessions publish nothing; and every reference comes back.
#include <gtest/gtest.h>

#include <tuple>

#include "absl/strings/str_cat.h"
#include "server/model/cache_tensors.h"
#include "tests/support/engine_harness.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

using engine::EngineOptions;
using model::Aggregation;
using model::Boundary;
using model::CkptDtype;

constexpr int kSegment = 8;

std::string Dir(Aggregation agg, Boundary boundary) {
  return WriteTestModel(SmallConfig(model::MemoryRule::kDelta, true, agg, kSegment, boundary),
                        /*seed=*/11);
}

EngineOptions Options(bool prefix_cache) {
  EngineOptions o;
  o.max_sessions = 8;
  o.intra_op_threads = 1;
  o.prefix_cache_bytes = prefix_cache ? (16 << 20) : 0;
  return o;
}

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 13 + salt * 29 + 5) % 250);
  return t;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

using Variant = std::tuple<Aggregation, Boundary, CkptDtype>;

class PrefixHitTest : public ::testing::TestWithParam<Variant> {};

TEST_P(PrefixHitTest, HitIsBitIdenticalToAFullPrefill) {
  const auto [agg, boundary, dtype] = GetParam();
  const std::string dir = Dir(agg, boundary);
  // Prefill pieces of up to two segments: where they span segments, hits
  // end on their grid (multiples of 16 tokens) and prefill the tail in the
  // same pieces as a miss; otherwise on any segment boundary.
  EngineHarness cached(dir, Options(true), nullptr, dtype, nullptr, 2 * kSegment);
  EngineHarness plain(dir, Options(false), nullptr, dtype, nullptr, 2 * kSegment);
  const int64_t grid = cached.model().prefill_grid();
  ASSERT_EQ(grid, cached.model().spans_segments() ? 2 * kSegment : kSegment);
  auto on_grid = [grid](int64_t tokens) { return tokens - tokens % grid; };
  // BOS + 28 tokens: three whole segments (24 tokens) are published.
  const std::vector<int32_t> shared = Tokens(28, 1);
  ASSERT_TRUE(cached.Generate("", shared, 2).status.ok());
  const std::vector<int32_t> prompt = Concat(shared, Tokens(13, 2));
  const EngineResult hit = cached.Generate("", prompt, 12);
  const EngineResult miss = plain.Generate("", prompt, 12);
  ASSERT_TRUE(hit.status.ok() && miss.status.ok()) << hit.status << miss.status;
  EXPECT_EQ(hit.usage.cached_prompt_tokens, on_grid(3 * kSegment));
  EXPECT_EQ(miss.usage.cached_prompt_tokens, 0);
  EXPECT_EQ(hit.usage.prompt_tokens, miss.usage.prompt_tokens);
  EXPECT_EQ(hit.usage.checkpoints, miss.usage.checkpoints);
  EXPECT_EQ(hit.tokens, miss.tokens);
  EXPECT_EQ(hit.logprobs, miss.logprobs);  // exact floats

  // The same through a session's first request.
  ASSERT_TRUE(cached.CreateSession("s").ok());
  const EngineResult in_session = cached.Generate("s", prompt, 12);
  ASSERT_TRUE(in_session.status.ok()) << in_session.status;
  EXPECT_EQ(in_session.usage.cached_prompt_tokens, on_grid(5 * kSegment));  // the one-shot's too
  EXPECT_EQ(in_session.tokens, miss.tokens);
  EXPECT_EQ(in_session.logprobs, miss.logprobs);
  EXPECT_TRUE(cached.AuditState().ok()) << cached.AuditState();
}

std::string VariantName(const ::testing::TestParamInfo<Variant>& info) {
  const auto [agg, boundary, dtype] = info.param;
  return absl::StrCat(model::AggregationName(agg), "_",
                      boundary == Boundary::kReset ? "reset" : "continue", "_",
                      dtype == CkptDtype::kBFloat16 ? "bf16" : "f32");
}

INSTANTIATE_TEST_SUITE_P(
    AllVariants, PrefixHitTest,
    ::testing::Combine(::testing::Values(Aggregation::kNone, Aggregation::kResidual,
                                         Aggregation::kMean, Aggregation::kGrm, Aggregation::kSoup,
                                         Aggregation::kSsc),
                       ::testing::Values(Boundary::kContinue, Boundary::kReset),
                       ::testing::Values(CkptDtype::kFloat32, CkptDtype::kBFloat16)),
    VariantName);

TEST(PrefixCacheTest, ABoundaryReachedByDecodingIsReusedWithinParityTolerance) {
  const std::string dir = Dir(Aggregation::kGrm, Boundary::kContinue);
  EngineHarness cached(dir, Options(true), nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  EngineHarness plain(dir, Options(false), nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  // BOS + 5 prompt tokens, then 20 generated: boundaries 8, 16 and 24 are
  // closed by decode steps.
  const std::vector<int32_t> start = Tokens(5, 3);
  const EngineResult first = cached.Generate("", start, 20);
  ASSERT_TRUE(first.status.ok()) << first.status;
  const std::vector<int32_t> prompt = Concat(Concat(start, first.tokens), Tokens(6, 4));
  const EngineResult hit = cached.Generate("", prompt, 8);
  const EngineResult miss = plain.Generate("", prompt, 8);
  ASSERT_TRUE(hit.status.ok() && miss.status.ok());
  EXPECT_EQ(hit.usage.cached_prompt_tokens, 3 * kSegment);
  EXPECT_EQ(hit.tokens, miss.tokens);
  ASSERT_EQ(hit.logprobs.size(), miss.logprobs.size());
  for (size_t i = 0; i < hit.logprobs.size(); ++i) {
    EXPECT_NEAR(hit.logprobs[i], miss.logprobs[i],
                1e-4 * std::max(1.0f, std::abs(miss.logprobs[i])))
        << i;
  }
}

TEST(PrefixCacheTest, OffIsNeverHitAndShorterThanASegmentIsNeverCached) {
  const std::string dir = Dir(Aggregation::kGrm, Boundary::kContinue);
  EngineHarness off(dir, Options(false), nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  const std::vector<int32_t> p = Tokens(30, 5);
  ASSERT_TRUE(off.Generate("", p, 1).status.ok());
  EXPECT_EQ(off.Generate("", p, 1).usage.cached_prompt_tokens, 0);
  EXPECT_EQ(off.SettledStatus().prefix_cache.hit_tokens, 0);

  EngineHarness on(dir, Options(true), nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  const std::vector<int32_t> tiny = Tokens(5, 6);  // BOS + 5: no boundary
  ASSERT_TRUE(on.Generate("", tiny, 0).status.ok());
  EXPECT_EQ(on.Generate("", tiny, 0).usage.cached_prompt_tokens, 0);
  // The last token is always fed, for its logits: a prompt of exactly one
  // segment (BOS + 7) publishes nothing before its first decode step, and
  // cannot use the segment it fills.
  const std::vector<int32_t> seven = Tokens(7, 7);
  const std::vector<int32_t> eight = Concat(seven, {1});
  ASSERT_TRUE(on.Generate("", seven, 0).status.ok());
  EXPECT_EQ(on.SettledStatus().prefix_cache.entries_device, 0);
  EXPECT_EQ(on.Generate("", eight, 0).usage.cached_prompt_tokens, 0);  // publishes block 0
  EXPECT_EQ(on.Generate("", seven, 0).usage.cached_prompt_tokens, 0);
  EXPECT_EQ(on.Generate("", eight, 0).usage.cached_prompt_tokens, kSegment);
  const engine::EngineStatus s = on.SettledStatus();
  EXPECT_EQ(s.prefix_cache.hit_tokens, kSegment);
  EXPECT_EQ(s.prefix_cache.entries_device, 1);
}

TEST(PrefixCacheTest, EntriesShareTheCheckpointsTheyWereMadeFrom) {
  const std::string dir = Dir(Aggregation::kGrm, Boundary::kContinue);
  EngineHarness h(dir, Options(true), nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  ASSERT_TRUE(h.CreateSession("s").ok());
  ASSERT_TRUE(h.Generate("s", Tokens(32, 8), 0).status.ok());  // BOS + 31 fed: 4 segments
  const engine::EngineStatus s = h.SettledStatus();
  EXPECT_EQ(s.checkpoints, 4);  // no copies: the entries reference the session's
  EXPECT_EQ(s.checkpoint_refs, 8);
  EXPECT_EQ(s.prefix_cache.entries_device, 4);
  EXPECT_EQ(s.prefix_cache.bytes_device, 4 * h.engine().checkpoint_bytes());
  ASSERT_TRUE(h.DeleteSession("s").ok());
  const engine::EngineStatus after = h.SettledStatus();
  EXPECT_EQ(after.checkpoints, 4);  // kept alive by the cache alone
  EXPECT_EQ(after.checkpoint_refs, 4);
  EXPECT_TRUE(h.AuditState().ok());
}

TEST(PrefixCacheTest, EntriesGoBeforeAnySessionCheckpointIsOffloaded) {
  const std::string dir = Dir(Aggregation::kGrm, Boundary::kContinue);
  EngineOptions o = Options(true);
  auto config = model::ModelConfig::Load(dir + "/config.json");
  const int64_t per = model::CheckpointBytes(*config, CkptDtype::kFloat32);
  o.checkpoint_pool_bytes = 6 * per;
  o.host_pool_bytes = 6 * per;
  EngineHarness h(dir, o, nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  // Two one-shot requests leave 3 + 3 cached checkpoints: the device is full.
  ASSERT_TRUE(h.Generate("", Tokens(25, 9), 0).status.ok());
  ASSERT_TRUE(h.Generate("", Tokens(25, 10), 0).status.ok());
  EXPECT_EQ(h.SettledStatus().checkpoint_slots_used, 6);
  ASSERT_TRUE(h.CreateSession("s").ok());
  const EngineResult r = h.Generate("s", Tokens(33, 11), 0);  // needs 4 slots
  ASSERT_TRUE(r.status.ok()) << r.status;
  const engine::EngineStatus s = h.SettledStatus();
  EXPECT_EQ(s.evictions.offloads, 0);  // the cache gave way instead
  EXPECT_LE(s.prefix_cache.entries_device + s.prefix_cache.entries_host, 6);
  EXPECT_EQ(s.host_checkpoint_slots_used, 0);
  EXPECT_TRUE(h.AuditState().ok()) << h.AuditState();
}

TEST(PrefixCacheTest, TheBudgetBoundsTheEntriesAndKeepsEachChainsRoot) {
  const std::string dir = Dir(Aggregation::kGrm, Boundary::kContinue);
  auto config = model::ModelConfig::Load(dir + "/config.json");
  EngineOptions o = Options(true);
  o.prefix_cache_bytes = 3 * model::CheckpointBytes(*config, CkptDtype::kFloat32);
  EngineHarness h(dir, o, nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  const std::vector<int32_t> p = Tokens(60, 12);  // 7 segments
  ASSERT_TRUE(h.Generate("", p, 0).status.ok());
  EXPECT_EQ(h.SettledStatus().prefix_cache.entries_device, 3);
  // The first three blocks stayed: a repeat starts after them.
  EXPECT_EQ(h.Generate("", p, 0).usage.cached_prompt_tokens, 3 * kSegment);
  EXPECT_TRUE(h.AuditState().ok());
}

TEST(PrefixCacheTest, ImportedSessionsPublishNothing) {
  const std::string dir = Dir(Aggregation::kGrm, Boundary::kContinue);
  EngineHarness h(dir, Options(true), nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  ASSERT_TRUE(h.CreateSession("a").ok());
  ASSERT_TRUE(h.Generate("a", Tokens(3, 13), 0).status.ok());
  absl::StatusOr<std::string> bytes = h.ExportSession("a");
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(h.ImportSession("b", *bytes).ok());
  ASSERT_TRUE(h.Generate("b", Tokens(20, 14), 0).status.ok());  // crosses boundaries
  EXPECT_EQ(h.SettledStatus().prefix_cache.entries_device, 0);
}

TEST(PrefixCacheTest, LossyEvictionGivesTheCacheUpToDropOrMergeWhatItShares) {
  const std::string dir = Dir(Aggregation::kGrm, Boundary::kContinue);
  auto config = model::ModelConfig::Load(dir + "/config.json");
  const int64_t per = model::CheckpointBytes(*config, CkptDtype::kFloat32);
  for (pool::LossyPolicy policy : {pool::LossyPolicy::kDrop, pool::LossyPolicy::kMerge}) {
    EngineOptions o = Options(true);
    o.checkpoint_pool_bytes = 4 * per;
    o.host_pool_bytes = 0;
    o.lossy_eviction = policy;
    EngineHarness h(dir, o, nullptr, CkptDtype::kFloat32, nullptr, kSegment);
    ASSERT_TRUE(h.CreateSession("s").ok());
    // BOS + 60 fed: 7 checkpoints for a device tier of 4, each one published.
    const EngineResult r = h.Generate("s", Tokens(61, 15), 2);
    ASSERT_TRUE(r.status.ok()) << pool::LossyPolicyName(policy) << ": " << r.status;
    absl::StatusOr<engine::SessionInfo> info = h.GetSession("s");
    ASSERT_TRUE(info.ok());
    EXPECT_TRUE(info->eviction.lossy);
    EXPECT_LE(info->num_checkpoints, 4);
    EXPECT_TRUE(h.AuditState().ok()) << h.AuditState();
  }
}

TEST(PrefixCacheTest, ImportMakesRoomFromCheckpointsOnlyTheCacheHolds) {
  const std::string dir = Dir(Aggregation::kGrm, Boundary::kContinue);
  auto config = model::ModelConfig::Load(dir + "/config.json");
  const int64_t per = model::CheckpointBytes(*config, CkptDtype::kFloat32);
  EngineHarness source(dir, Options(false), nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  ASSERT_TRUE(source.CreateSession("a").ok());
  ASSERT_TRUE(source.Generate("a", Tokens(25, 16), 0).status.ok());  // 3 checkpoints
  absl::StatusOr<std::string> bytes = source.ExportSession("a");
  ASSERT_TRUE(bytes.ok());

  EngineOptions o = Options(true);
  o.checkpoint_pool_bytes = 6 * per;
  o.host_pool_bytes = 0;
  EngineHarness h(dir, o, nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  ASSERT_TRUE(h.Generate("", Tokens(25, 17), 0).status.ok());
  ASSERT_TRUE(h.Generate("", Tokens(25, 18), 0).status.ok());
  EXPECT_EQ(h.SettledStatus().checkpoint_slots_used, 6);  // all held by the cache alone
  absl::StatusOr<engine::SessionInfo> imported = h.ImportSession("b", *bytes);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->num_checkpoints, 3);
  EXPECT_TRUE(h.AuditState().ok()) << h.AuditState();
}

TEST(PrefixCacheTest, AFirstRequestThatFailsAfterAdoptingLeavesTheSessionNew) {
  const std::string dir = Dir(Aggregation::kGrm, Boundary::kContinue);
  auto config = model::ModelConfig::Load(dir + "/config.json");
  EngineOptions o = Options(true);
  o.checkpoint_pool_bytes = 4 * model::CheckpointBytes(*config, CkptDtype::kFloat32);
  o.host_pool_bytes = 0;  // nothing can be offloaded, nothing is lossy
  EngineHarness h(dir, o, nullptr, CkptDtype::kFloat32, nullptr, kSegment);
  const std::vector<int32_t> shared = Tokens(15, 19);
  ASSERT_TRUE(h.Generate("", shared, 0).status.ok());  // caches block 0 (1 checkpoint)
  ASSERT_TRUE(h.CreateSession("hog").ok());
  ASSERT_TRUE(h.Generate("hog", Tokens(31, 20), 0).status.ok());  // 3 more: the device is full
  ASSERT_TRUE(h.CreateSession("s").ok());
  // Starts from block 0, then needs a device slot for block 1: there is none.
  const std::vector<int32_t> prompt = Concat(shared, Tokens(8, 21));
  const EngineResult r = h.Generate("s", prompt, 1);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted) << r.status;
  absl::StatusOr<engine::SessionInfo> info = h.GetSession("s");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->num_tokens, 1);  // BOS only, as before the request
  EXPECT_EQ(info->num_checkpoints, 0);
  ASSERT_TRUE(h.DeleteSession("hog").ok());
  const EngineResult again = h.Generate("s", prompt, 1);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.usage.cached_prompt_tokens, kSegment);
  EXPECT_TRUE(h.AuditState().ok()) << h.AuditState();
}

}  // namespace
}  // namespace mcserve::testing
