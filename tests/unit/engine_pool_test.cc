// The engine with a deliberately tiny checkpoint pool and many sessions:
// lossless offload, lossy policies, sharing by fork, snapshots, and that
// every slot and reference is returned.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/model/cache_tensors.h"
#include "tests/support/engine_harness.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

using engine::EngineOptions;
using engine::EngineStatus;

constexpr int kSegment = 8;

const std::string& ModelDir() {
  static const std::string* dir = new std::string(
      WriteTestModel(SmallConfig(model::MemoryRule::kDelta, true, model::Aggregation::kGrm,
                                 kSegment, model::Boundary::kContinue),
                     /*seed=*/7));
  return *dir;
}

int64_t CkptBytes() {
  auto c = model::ModelConfig::Load(ModelDir() + "/config.json");
  return model::CheckpointBytes(*c, model::CkptDtype::kFloat32);
}

EngineOptions Pool(int device_ckpts, int host_ckpts,
                   pool::LossyPolicy lossy = pool::LossyPolicy::kNone) {
  EngineOptions o;
  o.max_sessions = 32;
  o.checkpoint_pool_bytes = device_ckpts * CkptBytes();
  o.host_pool_bytes = host_ckpts * CkptBytes();
  o.lossy_eviction = lossy;
  o.intra_op_threads = 1;
  o.prefix_cache_bytes = 0;  // these tests count every slot (prefix_cache_test.cc has its own)
  return o;
}

std::vector<int32_t> Prompt(int session, int round, int n = 10) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back((session * 31 + round * 7 + i * 3) % 250);
  return p;
}

std::string Name(int i) { return absl::StrCat("s", i); }

void ExpectEmpty(EngineHarness& h) {
  const EngineStatus s = h.SettledStatus();
  EXPECT_EQ(s.checkpoint_slots_used, 0);
  EXPECT_EQ(s.host_checkpoint_slots_used, 0);
  EXPECT_EQ(s.checkpoints, 0);
  EXPECT_EQ(s.checkpoint_refs, 0);
  EXPECT_EQ(s.state_slots_used, 0);
  EXPECT_EQ(s.running + s.waiting, 0);
}

// Runs `rounds` requests on each of `sessions` sessions, round-robin, one
// at a time; returns every result in order.
std::vector<EngineResult> RoundRobin(EngineHarness& h, int sessions, int rounds, int gen = 6) {
  for (int i = 0; i < sessions; ++i) EXPECT_TRUE(h.CreateSession(Name(i)).ok());
  std::vector<EngineResult> out;
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < sessions; ++i) out.push_back(h.Generate(Name(i), Prompt(i, r), gen));
  }
  return out;
}

// The same, but every session's request of a round runs concurrently.
std::vector<EngineResult> Concurrent(EngineHarness& h, int sessions, int rounds, int gen = 6) {
  for (int i = 0; i < sessions; ++i) EXPECT_TRUE(h.CreateSession(Name(i)).ok());
  std::vector<EngineResult> out;
  for (int r = 0; r < rounds; ++r) {
    std::vector<PendingRequest> pending;
    for (int i = 0; i < sessions; ++i) pending.push_back(h.Start(Name(i), Prompt(i, r), gen));
    for (PendingRequest& p : pending) out.push_back(p.Wait());
  }
  return out;
}

TEST(EnginePoolTest, OffloadingIsLosslessBitForBit) {
  // 8 sessions x 48 tokens = 6 checkpoints each, 48 in all, on 8 device
  // slots: every request fetches its session's checkpoints back.
  EngineHarness roomy(ModelDir(), Pool(512, 0));
  EngineHarness tiny(ModelDir(), Pool(8, 48));
  const std::vector<EngineResult> want = RoundRobin(roomy, 8, 3);
  const std::vector<EngineResult> got = RoundRobin(tiny, 8, 3);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(got[i].status.ok()) << got[i].status;
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "request " << i;
    EXPECT_EQ(got[i].logprobs, want[i].logprobs) << "request " << i;  // exact floats
  }
  int64_t offloaded = 0, fetched = 0;
  for (int i = 0; i < 8; ++i) {
    auto info = tiny.GetSession(Name(i));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->num_checkpoints, 6);
    EXPECT_EQ(info->checkpoints_on_device + info->checkpoints_on_host, 6);
    EXPECT_FALSE(info->eviction.lossy);
    offloaded += info->eviction.offloaded;
    fetched += info->eviction.fetched;
  }
  const EngineStatus s = tiny.SettledStatus();
  EXPECT_GT(offloaded, 0);
  EXPECT_GT(fetched, 0);
  EXPECT_EQ(s.evictions.offloads, offloaded);
  EXPECT_EQ(s.evictions.fetches, fetched);
  EXPECT_EQ(s.evictions.drops + s.evictions.merges, 0);
  EXPECT_EQ(s.checkpoint_slots_used, 8);
  EXPECT_EQ(s.host_checkpoint_slots_used, 40);
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(tiny.DeleteSession(Name(i)).ok());
  ExpectEmpty(tiny);
}

TEST(EnginePoolTest, ConcurrentSessionsOnATinyPoolMatchARoomyOne) {
  // All 8 sessions decode together, but only 8 checkpoints fit on the
  // device: the engine runs the batch in groups whose checkpoints fit.
  EngineHarness roomy(ModelDir(), Pool(512, 0));
  EngineHarness tiny(ModelDir(), Pool(8, 48));
  const std::vector<EngineResult> want = Concurrent(roomy, 8, 3);
  const std::vector<EngineResult> got = Concurrent(tiny, 8, 3);
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(got[i].status.ok()) << got[i].status;
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "request " << i;
  }
  EXPECT_GT(tiny.SettledStatus().evictions.fetches, 0);
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(tiny.DeleteSession(Name(i)).ok());
  ExpectEmpty(tiny);
}

class LossyPolicyTest : public ::testing::TestWithParam<pool::LossyPolicy> {};

TEST_P(LossyPolicyTest, MarksSessionsLossyAndKeepsServing) {
  // 48 checkpoints wanted, 8 + 8 slots: the policy must make room.
  EngineHarness h(ModelDir(), Pool(8, 8, GetParam()));
  const std::vector<EngineResult> got = Concurrent(h, 8, 3);
  for (const EngineResult& r : got) {
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.tokens.size(), 6u);
  }
  int lossy = 0;
  int64_t lost = 0;
  for (int i = 0; i < 8; ++i) {
    auto info = h.GetSession(Name(i));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->num_tokens, 1 + 3 * 16);
    lossy += info->eviction.lossy;
    lost += GetParam() == pool::LossyPolicy::kDrop ? info->eviction.dropped : info->eviction.merged;
    EXPECT_LE(info->num_checkpoints, 6);
  }
  const EngineStatus s = h.SettledStatus();
  EXPECT_GT(lossy, 0);
  EXPECT_EQ(s.lossy_sessions, lossy);
  EXPECT_GE(lost, 48 - 16);
  EXPECT_LE(s.checkpoints, 16);
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(h.DeleteSession(Name(i)).ok());
  ExpectEmpty(h);
}

INSTANTIATE_TEST_SUITE_P(Policies, LossyPolicyTest,
                         ::testing::Values(pool::LossyPolicy::kDrop, pool::LossyPolicy::kMerge),
                         [](const auto& info) {
                           return std::string(pool::LossyPolicyName(info.param));
                         });

TEST(EnginePoolTest, WithoutRoomOrPolicyRequestsGetResourceExhausted) {
  EngineHarness roomy(ModelDir(), Pool(64, 0));
  EngineHarness h(ModelDir(), Pool(4, 4));
  for (EngineHarness* e : {&roomy, &h}) {
    for (const char* id : {"a", "b"}) {
      ASSERT_TRUE(e->CreateSession(id).ok());
      ASSERT_TRUE(e->Generate(id, Prompt(0, 0, 3 * kSegment), 0).status.ok());
    }
  }
  // a and b hold 6 of the 8 slots; c needs 3 more.
  ASSERT_TRUE(h.CreateSession("c").ok());
  EngineResult r = h.Generate("c", Prompt(1, 0, 3 * kSegment), 0);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted) << r.status;
  EXPECT_NE(r.status.message().find("checkpoint pool is full"), std::string::npos) << r.status;
  auto c = h.GetSession("c");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->num_checkpoints, 0);  // nothing half-made
  // Nobody else was harmed: a continues exactly as on a roomy server once
  // there is room to read its checkpoints.
  ASSERT_TRUE(h.DeleteSession("c").ok());
  const EngineResult want = roomy.Generate("a", Prompt(2, 0), 5);
  const EngineResult got = h.Generate("a", Prompt(2, 0), 5);
  ASSERT_TRUE(got.status.ok()) << got.status;
  // The same function: with one free slot the prompt is cut at its segment
  // boundary, where the roomy server prefills it as one span, so the two
  // round differently (span_mixer.h) and agree to float precision.
  EXPECT_EQ(got.tokens, want.tokens);
  ASSERT_EQ(got.logprobs.size(), want.logprobs.size());
  for (size_t i = 0; i < want.logprobs.size(); ++i) {
    EXPECT_NEAR(got.logprobs[i], want.logprobs[i], 1e-5) << i;
  }
  // A prompt that would leave one session with more checkpoints than the
  // device tier holds is refused before any of it is read.
  const int64_t tokens = h.GetSession("a")->num_tokens;
  r = h.Generate("a", Prompt(3, 0, 2 * kSegment), 0);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted) << r.status;
  EXPECT_NE(r.status.message().find("more than the device tier's 4 slots"), std::string::npos)
      << r.status;
  EXPECT_EQ(h.GetSession("a")->num_tokens, tokens);
  for (const char* id : {"a", "b"}) ASSERT_TRUE(h.DeleteSession(id).ok());
  ExpectEmpty(h);
}

TEST(EnginePoolTest, BurstOfSessionsBeyondTheCapIsRefusedCleanly) {
  EngineOptions o = Pool(16, 0);
  o.max_sessions = 4;
  EngineHarness h(ModelDir(), o);
  int ok = 0, exhausted = 0;
  for (int i = 0; i < 10; ++i) {
    auto s = h.CreateSession(Name(i));
    ok += s.ok();
    exhausted += s.status().code() == absl::StatusCode::kResourceExhausted;
  }
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(exhausted, 6);
  EXPECT_TRUE(h.Generate(Name(0), Prompt(0, 0), 4).status.ok());
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(h.DeleteSession(Name(i)).ok());
  ExpectEmpty(h);
}

TEST(EnginePoolTest, ForkSharesCheckpointsAndBothBranchesContinueCorrectly) {
  EngineHarness h(ModelDir(), Pool(64, 0));
  ASSERT_TRUE(h.CreateSession("parent").ok());
  ASSERT_TRUE(h.Generate("parent", Prompt(0, 0, 3 * kSegment), 0).status.ok());
  const EngineStatus before = h.SettledStatus();
  auto child = h.ForkSession("parent", "child");
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(child->num_tokens, 1 + 3 * kSegment);
  EXPECT_EQ(child->num_checkpoints, 3);
  const EngineStatus shared = h.SettledStatus();
  EXPECT_EQ(shared.checkpoints, before.checkpoints);  // no copy
  EXPECT_EQ(shared.checkpoint_refs, 2 * before.checkpoint_refs);
  EXPECT_EQ(shared.state_slots_used, before.state_slots_used);  // copy on write

  // Parent continues first; the child must not see the parent's writes.
  const EngineResult p1 = h.Generate("parent", Prompt(5, 5), 12);
  const EngineResult c1 = h.Generate("child", Prompt(5, 5), 12);
  ASSERT_TRUE(p1.status.ok() && c1.status.ok());
  EXPECT_EQ(c1.tokens, p1.tokens);
  EXPECT_EQ(c1.logprobs, p1.logprobs);
  // A fresh session fed the same history agrees with both branches.
  ASSERT_TRUE(h.CreateSession("fresh").ok());
  ASSERT_TRUE(h.Generate("fresh", Prompt(0, 0, 3 * kSegment), 0).status.ok());
  const EngineResult f1 = h.Generate("fresh", Prompt(5, 5), 12);
  EXPECT_EQ(f1.tokens, p1.tokens);
  // Diverging continuations stay independent.
  const EngineResult p2 = h.Generate("parent", Prompt(6, 6), 5);
  const EngineResult c2 = h.Generate("child", Prompt(7, 7), 5);
  const EngineResult f2 = h.Generate("fresh", Prompt(7, 7), 5);
  EXPECT_EQ(c2.tokens, f2.tokens);
  EXPECT_EQ(h.SettledStatus().state_slots_used, 3);
  // Deleting the parent leaves the child whole.
  ASSERT_TRUE(h.DeleteSession("parent").ok());
  const EngineResult c3 = h.Generate("child", Prompt(8, 8), 5);
  const EngineResult f3 = h.Generate("fresh", Prompt(8, 8), 5);
  EXPECT_EQ(c3.tokens, f3.tokens);
  EXPECT_EQ(h.ForkSession("nope", "x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(h.ForkSession("child", "fresh").status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(h.DeleteSession("child").ok());
  ASSERT_TRUE(h.DeleteSession("fresh").ok());
  ExpectEmpty(h);
}

TEST(EnginePoolTest, ExportThenImportContinuesWithIdenticalTokens) {
  EngineHarness a(ModelDir(), Pool(16, 16));
  EngineHarness b(ModelDir(), Pool(16, 16, pool::LossyPolicy::kNone));
  ASSERT_TRUE(a.CreateSession("s").ok());
  ASSERT_TRUE(a.Generate("s", Prompt(0, 0, 3 * kSegment + 3), 5).status.ok());
  absl::StatusOr<std::string> bytes = a.ExportSession("s");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto info = b.ImportSession("", *bytes);  // another server, the stored id
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->id, "s");
  EXPECT_EQ(info->num_tokens, 1 + 3 * kSegment + 3 + 5);
  auto copy = a.ImportSession("s2", *bytes);  // beside the original
  ASSERT_TRUE(copy.ok()) << copy.status();
  const EngineResult want = a.Generate("s", Prompt(1, 1), 10);
  const EngineResult got = b.Generate("s", Prompt(1, 1), 10);
  const EngineResult got2 = a.Generate("s2", Prompt(1, 1), 10);
  ASSERT_TRUE(want.status.ok() && got.status.ok() && got2.status.ok());
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.logprobs, want.logprobs);
  EXPECT_EQ(got2.tokens, want.tokens);
  EXPECT_EQ(a.ImportSession("s", *bytes).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(EnginePoolTest, DamagedOrForeignSnapshotsAreRejectedAndNothingIsCreated) {
  EngineHarness a(ModelDir(), Pool(16, 16));
  ASSERT_TRUE(a.CreateSession("s").ok());
  ASSERT_TRUE(a.Generate("s", Prompt(0, 0, 2 * kSegment), 0).status.ok());
  const std::string good = *a.ExportSession("s");
  const EngineStatus before = a.SettledStatus();

  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x01;
  auto r = a.ImportSession("x", flipped);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("checksum mismatch"), std::string::npos) << r.status();
  r = a.ImportSession("x", good.substr(0, good.size() - 100));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = a.ImportSession("x", "hello");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("magic"), std::string::npos) << r.status();

  // Same shapes, other weights: refused by the model fingerprint.
  const std::string other_dir =
      WriteTestModel(SmallConfig(model::MemoryRule::kDelta, true, model::Aggregation::kGrm,
                                 kSegment, model::Boundary::kContinue),
                     /*seed=*/8);
  EngineHarness other(other_dir, Pool(16, 16));
  r = other.ImportSession("x", good);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("different model"), std::string::npos) << r.status();

  // Too big for the pool: refused whole.
  EngineHarness small(ModelDir(), Pool(1, 0));
  r = small.ImportSession("x", good);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  ExpectEmpty(small);

  EXPECT_FALSE(a.GetSession("x").ok());
  const EngineStatus after = a.SettledStatus();
  EXPECT_EQ(after.sessions, before.sessions);
  EXPECT_EQ(after.checkpoints, before.checkpoints);
  EXPECT_EQ(after.state_slots_used, before.state_slots_used);
}

TEST(EnginePoolTest, CancelledAndOneShotRequestsFreeEverything) {
  // Room for the ~thousands of tokens a request makes before it is cancelled.
  EngineHarness h(ModelDir(), Pool(4096, 0));
  // One-shot requests hold checkpoints only while they run.
  EXPECT_TRUE(h.Generate("", Prompt(0, 0, 3 * kSegment), 10).status.ok());
  ExpectEmpty(h);
  PendingRequest p = h.Start("", Prompt(1, 0, 2 * kSegment), 100000);
  absl::SleepFor(absl::Milliseconds(50));
  h.Cancel(p);
  ExpectEmpty(h);
  // A session's request cancelled mid-way leaves the session consistent.
  ASSERT_TRUE(h.CreateSession("s").ok());
  PendingRequest q = h.Start("s", Prompt(2, 0, 2 * kSegment), 100000);
  absl::SleepFor(absl::Milliseconds(50));
  h.Cancel(q);
  auto info = h.GetSession("s");
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->busy);
  EXPECT_EQ(info->num_checkpoints, (info->num_tokens - 1) / kSegment);
  EXPECT_TRUE(h.Generate("s", {}, 3).status.ok());
  ASSERT_TRUE(h.DeleteSession("s").ok());
  ExpectEmpty(h);
}

TEST(EnginePoolTest, IdleSessionsExpireAfterTheirTtl) {
  FakeClock clock(absl::UnixEpoch());
  EngineOptions o = Pool(8, 8);
  o.session_idle_ttl = absl::Minutes(10);
  EngineHarness h(ModelDir(), o, &clock);
  ASSERT_TRUE(h.CreateSession("old").ok());
  ASSERT_TRUE(h.Generate("old", Prompt(0, 0, 2 * kSegment), 0).status.ok());
  h.SettledStatus();  // the request's end (last use) is stamped after its final message
  clock.Advance(absl::Minutes(6));
  ASSERT_TRUE(h.CreateSession("new").ok());
  clock.Advance(absl::Minutes(6));  // old: 12 min idle, new: 6
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (h.GetSession("old").ok() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(h.GetSession("old").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(h.GetSession("new").ok());
  EXPECT_EQ(h.SettledStatus().checkpoints, 0);
}

}  // namespace
}  // namespace mcserve::testing
