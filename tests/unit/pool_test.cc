// The checkpoint pool and the eviction order, on CPU without a model.
#include <gtest/gtest.h>

#include "server/pool/checkpoint_pool.h"
#include "server/pool/eviction.h"
#include "server/pool/slot_allocator.h"

namespace mcserve::pool {
namespace {

model::ModelConfig TinyConfig() {
  model::ModelConfig c;
  c.n_layers = 2;
  c.n_heads = 2;
  c.head_dim = 4;
  return c;
}

PoolOptions Slots(int32_t device, int32_t host, at::ScalarType dtype = at::kFloat) {
  PoolOptions o;
  o.device_slots = device;
  o.host_slots = host;
  o.dtype = dtype;
  return o;
}

// A checkpoint filled with a value pattern unique to `seed`.
CkptId Filled(CheckpointPool& p, float seed) {
  std::optional<CkptId> id = p.Create();
  EXPECT_TRUE(id.has_value());
  p.state(*id).copy_(at::arange(p.state(*id).numel(), at::kFloat).view_as(p.state(*id)) + seed);
  p.summary(*id).fill_(seed);
  return *id;
}

// One session's view for eviction.
struct FakeSession {
  explicit FakeSession(std::string name) : id(std::move(name)) {}
  std::string id;
  std::vector<CkptId> ckpts;
  bool running = false;
  absl::Time last_used = absl::UnixEpoch();
  EvictionStats stats;
  Holder holder() { return Holder{id, &ckpts, running, last_used, &stats}; }
};

TEST(SlotAllocatorTest, RefcountsAndReuse) {
  SlotAllocator a(2);
  auto x = a.Allocate();
  auto y = a.Allocate();
  ASSERT_TRUE(x && y);
  EXPECT_FALSE(a.Allocate().has_value());
  EXPECT_TRUE(a.Ref(*x).ok());
  EXPECT_TRUE(a.Unref(*x).ok());
  EXPECT_EQ(a.used(), 2);
  EXPECT_TRUE(a.Unref(*x).ok());
  EXPECT_EQ(a.used(), 1);
  EXPECT_EQ(a.Allocate(), x);
}

TEST(SlotAllocatorTest, ReferenceBugsAreErrorsInEveryBuild) {
  SlotAllocator a(2);
  const int32_t x = *a.Allocate();
  EXPECT_EQ(a.Unref(1).code(), absl::StatusCode::kInternal);  // never allocated
  EXPECT_EQ(a.Ref(7).code(), absl::StatusCode::kInternal);    // out of range
  EXPECT_TRUE(a.Unref(x).ok());
  const absl::Status twice = a.Unref(x);
  EXPECT_EQ(twice.code(), absl::StatusCode::kInternal);
  EXPECT_NE(twice.message().find("reference count bug"), std::string::npos) << twice;
  EXPECT_EQ(a.used(), 0);  // the bad calls changed nothing
}

TEST(CheckpointPoolTest, ReferenceBugsAreErrorsInEveryBuild) {
  CheckpointPool p(TinyConfig(), Slots(2, 0));
  const CkptId a = Filled(p, 1);
  EXPECT_TRUE(p.Unref(a).ok());
  EXPECT_EQ(p.Unref(a).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(p.Ref(a).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(p.Ref(-1).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(p.live(), 0);
  EXPECT_EQ(p.total_refs(), 0);
  EXPECT_EQ(p.device_used(), 0);
}

class PoolDtypeTest : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(PoolDtypeTest, OffloadAndFetchAreBitExact) {
  CheckpointPool p(TinyConfig(), Slots(2, 2, GetParam()));
  const CkptId a = Filled(p, 0.123f);
  const at::Tensor before = p.state(a).clone(), sum_before = p.summary(a).clone();
  ASSERT_TRUE(p.Offload(a));
  EXPECT_EQ(p.tier(a), Tier::kHost);
  EXPECT_EQ(p.device_used(), 0);
  EXPECT_EQ(p.host_used(), 1);
  // Another checkpoint takes the device slot meanwhile.
  const CkptId b = Filled(p, 9.0f);
  ASSERT_TRUE(p.Fetch(a));
  EXPECT_EQ(p.tier(a), Tier::kDevice);
  EXPECT_NE(p.device_slot(a), p.device_slot(b));
  EXPECT_TRUE(at::equal(p.state(a), before));
  EXPECT_TRUE(at::equal(p.summary(a), sum_before));
  EXPECT_EQ(p.counters().offloads, 1);
  EXPECT_EQ(p.counters().fetches, 1);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PoolDtypeTest, ::testing::Values(at::kFloat, at::kBFloat16));

TEST(CheckpointPoolTest, TiersRefuseWhenFull) {
  CheckpointPool p(TinyConfig(), Slots(1, 1));
  const CkptId a = Filled(p, 1);
  EXPECT_FALSE(p.Create().has_value());
  ASSERT_TRUE(p.Offload(a));
  const CkptId b = Filled(p, 2);
  EXPECT_FALSE(p.Offload(b));  // host full: nothing moved
  EXPECT_EQ(p.tier(b), Tier::kDevice);
  EXPECT_FALSE(p.Fetch(a));  // device full
  EXPECT_EQ(p.tier(a), Tier::kHost);
}

TEST(CheckpointPoolTest, ReferencesFreeSlotsAtZero) {
  CheckpointPool p(TinyConfig(), Slots(2, 2));
  const CkptId a = Filled(p, 1);
  ASSERT_TRUE(p.Ref(a).ok());
  EXPECT_EQ(p.total_refs(), 2);
  ASSERT_TRUE(p.Offload(a));
  ASSERT_TRUE(p.Unref(a).ok());
  EXPECT_EQ(p.live(), 1);
  EXPECT_EQ(p.host_used(), 1);
  ASSERT_TRUE(p.Unref(a).ok());
  EXPECT_EQ(p.live(), 0);
  EXPECT_EQ(p.host_used(), 0);
  EXPECT_EQ(p.device_used(), 0);
  EXPECT_EQ(p.total_refs(), 0);
}

TEST(CheckpointPoolTest, MergeIsTheMeanOfStatesAndSummaries) {
  CheckpointPool p(TinyConfig(), Slots(2, 0));
  const CkptId a = Filled(p, 1), b = Filled(p, 3);
  const at::Tensor want = (p.state(a) + p.state(b)) / 2;
  p.Merge(a, b);
  EXPECT_TRUE(at::allclose(p.state(a), want));
  EXPECT_TRUE(at::equal(p.summary(a), at::full_like(p.summary(a), 2.0f)));
  EXPECT_EQ(p.live(), 1);
  EXPECT_EQ(p.device_used(), 1);
}

TEST(CheckpointPoolTest, MergeAcrossTiersLandsInTheKeptSlot) {
  CheckpointPool p(TinyConfig(), Slots(2, 1));
  const CkptId a = Filled(p, 1), b = Filled(p, 5);
  ASSERT_TRUE(p.Offload(a));
  p.Merge(a, b);  // a on the host, b on the device
  EXPECT_EQ(p.tier(a), Tier::kHost);
  EXPECT_TRUE(at::equal(p.summary(a), at::full_like(p.summary(a), 3.0f)));
  EXPECT_EQ(p.device_used(), 0);
  EXPECT_EQ(p.live(), 1);
}

TEST(CheckpointPoolTest, UsefulnessIsARunningAverageOfGateWeights) {
  CheckpointPool p(TinyConfig(), Slots(1, 0));
  const CkptId a = Filled(p, 0);
  EXPECT_EQ(p.usefulness(a), 1.0f);  // unobserved: presumed useful
  p.Observe(a, 0.5f);
  EXPECT_EQ(p.usefulness(a), 0.5f);
  p.Observe(a, 0.0f);
  EXPECT_FLOAT_EQ(p.usefulness(a), 0.45f);
}

TEST(EvictionTest, IdleSessionsLeastRecentlyUsedGoFirst) {
  CheckpointPool p(TinyConfig(), Slots(3, 3));
  FakeSession old_idle("old"), new_idle("new"), busy("busy");
  old_idle.last_used = absl::UnixEpoch() + absl::Seconds(1);
  new_idle.last_used = absl::UnixEpoch() + absl::Seconds(5);
  busy.running = true;
  busy.ckpts = {Filled(p, 0)};
  new_idle.ckpts = {Filled(p, 1)};
  old_idle.ckpts = {Filled(p, 2)};
  p.Observe(busy.ckpts[0], 0.0f);  // least useful, but its session runs
  std::vector<Holder> h = {busy.holder(), new_idle.holder(), old_idle.holder()};
  ASSERT_TRUE(FreeDeviceSlots(p, h, LossyPolicy::kNone).ok());
  EXPECT_EQ(p.tier(old_idle.ckpts[0]), Tier::kHost);
  EXPECT_EQ(old_idle.stats.offloaded, 1);
  Filled(p, 3);  // fill the freed slot; the next victim is the other idle one
  ASSERT_TRUE(FreeDeviceSlots(p, h, LossyPolicy::kNone).ok());
  EXPECT_EQ(p.tier(new_idle.ckpts[0]), Tier::kHost);
  EXPECT_EQ(p.tier(busy.ckpts[0]), Tier::kDevice);
}

TEST(EvictionTest, RunningSessionsLoseTheirLeastUsefulCheckpointFirst) {
  CheckpointPool p(TinyConfig(), Slots(3, 3));
  FakeSession a("a"), b("b");
  a.running = b.running = true;
  a.ckpts = {Filled(p, 0), Filled(p, 1)};
  b.ckpts = {Filled(p, 2)};
  p.Observe(a.ckpts[0], 0.6f);
  p.Observe(a.ckpts[1], 0.1f);
  p.Observe(b.ckpts[0], 0.3f);
  std::vector<Holder> h = {a.holder(), b.holder()};
  ASSERT_TRUE(FreeDeviceSlots(p, h, LossyPolicy::kNone).ok());
  EXPECT_EQ(p.tier(a.ckpts[1]), Tier::kHost);
  EXPECT_FALSE(a.stats.lossy);
}

TEST(EvictionTest, PinnedCheckpointsAreNeverTouched) {
  CheckpointPool p(TinyConfig(), Slots(2, 2));
  FakeSession a("a");
  a.ckpts = {Filled(p, 0), Filled(p, 1)};
  p.BeginEpoch();
  p.Pin(a.ckpts[0]);
  p.Pin(a.ckpts[1]);
  std::vector<Holder> h = {a.holder()};
  const absl::Status s = FreeDeviceSlots(p, h, LossyPolicy::kDrop);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(a.ckpts.size(), 2u);
  p.BeginEpoch();  // pins last one epoch
  EXPECT_TRUE(FreeDeviceSlots(p, h, LossyPolicy::kNone).ok());
}

TEST(EvictionTest, FullHostWithoutLossyPolicyIsResourceExhausted) {
  CheckpointPool p(TinyConfig(), Slots(1, 1));
  FakeSession a("a");
  a.ckpts = {Filled(p, 0)};
  std::vector<Holder> h = {a.holder()};
  ASSERT_TRUE(FreeDeviceSlots(p, h, LossyPolicy::kNone).ok());
  a.ckpts.push_back(Filled(p, 1));
  const absl::Status s = FreeDeviceSlots(p, h, LossyPolicy::kNone);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("1/1 device slots and 1/1 host slots"), std::string::npos) << s;
  EXPECT_EQ(p.live(), 2);
}

TEST(EvictionTest, DropRemovesTheLeastUsefulUnsharedCheckpoint) {
  CheckpointPool p(TinyConfig(), Slots(2, 1));
  FakeSession a("a"), b("b");
  a.ckpts = {Filled(p, 0)};
  ASSERT_TRUE(p.Offload(a.ckpts[0]));  // host now full
  b.ckpts = {Filled(p, 1), Filled(p, 2)};
  p.Observe(a.ckpts[0], 0.01f);  // least useful, on the host
  p.Observe(b.ckpts[0], 0.5f);
  p.Observe(b.ckpts[1], 0.4f);
  std::vector<Holder> h = {a.holder(), b.holder()};
  ASSERT_TRUE(FreeDeviceSlots(p, h, LossyPolicy::kDrop).ok());
  // a's checkpoint was dropped (freeing the host), then a b checkpoint
  // could be offloaded into it.
  EXPECT_TRUE(a.ckpts.empty());
  EXPECT_TRUE(a.stats.lossy);
  EXPECT_EQ(a.stats.dropped, 1);
  EXPECT_FALSE(b.stats.lossy);
  EXPECT_EQ(p.device_used(), 1);
  EXPECT_EQ(p.host_used(), 1);
  EXPECT_EQ(p.counters().drops, 1);
}

TEST(EvictionTest, MergeAveragesTheLeastUsefulAdjacentPair) {
  CheckpointPool p(TinyConfig(), Slots(3, 0));
  FakeSession a("a");
  a.ckpts = {Filled(p, 0), Filled(p, 2), Filled(p, 4)};
  p.Observe(a.ckpts[0], 0.9f);
  p.Observe(a.ckpts[1], 0.1f);
  p.Observe(a.ckpts[2], 0.2f);
  const CkptId keep = a.ckpts[1];
  std::vector<Holder> h = {a.holder()};
  ASSERT_TRUE(FreeDeviceSlots(p, h, LossyPolicy::kMerge).ok());
  ASSERT_EQ(a.ckpts.size(), 2u);
  EXPECT_EQ(a.ckpts[1], keep);
  EXPECT_TRUE(at::equal(p.summary(keep), at::full_like(p.summary(keep), 3.0f)));
  EXPECT_EQ(a.stats.merged, 1);
  EXPECT_TRUE(a.stats.lossy);
}

TEST(EvictionTest, SharedCheckpointsAreNeitherDroppedNorMerged) {
  CheckpointPool p(TinyConfig(), Slots(2, 0));
  FakeSession a("a"), b("b");
  a.ckpts = {Filled(p, 0), Filled(p, 1)};
  b.ckpts = a.ckpts;  // a fork
  for (CkptId id : b.ckpts) ASSERT_TRUE(p.Ref(id).ok());
  std::vector<Holder> h = {a.holder(), b.holder()};
  EXPECT_EQ(FreeDeviceSlots(p, h, LossyPolicy::kDrop).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(FreeDeviceSlots(p, h, LossyPolicy::kMerge).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a.ckpts.size(), 2u);
  EXPECT_FALSE(a.stats.lossy || b.stats.lossy);
}

TEST(EvictionTest, ShrinkHolderAppliesThePolicyToOneSession) {
  CheckpointPool p(TinyConfig(), Slots(4, 0));
  FakeSession a("a");
  a.ckpts = {Filled(p, 0), Filled(p, 1), Filled(p, 2), Filled(p, 3)};
  EXPECT_EQ(ShrinkHolder(p, a.holder(), 2, LossyPolicy::kNone).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(ShrinkHolder(p, a.holder(), 2, LossyPolicy::kMerge).ok());
  EXPECT_EQ(a.ckpts.size(), 2u);
  EXPECT_EQ(a.stats.merged, 2);
  EXPECT_EQ(p.live(), 2);
}

TEST(LossyPolicyTest, ParsesItsNames) {
  for (LossyPolicy policy : {LossyPolicy::kNone, LossyPolicy::kDrop, LossyPolicy::kMerge}) {
    EXPECT_EQ(*ParseLossyPolicy(LossyPolicyName(policy)), policy);
  }
  EXPECT_EQ(ParseLossyPolicy("evict").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mcserve::pool
