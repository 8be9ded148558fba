// Failure without collapse: an injected LibTorch failure (a failed
// allocation, a kernel error) in one request ends that request with a
// status, marks its session damaged when its state may be half-written, and
// leaves every other request's output bit-identical to a run without it.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/util/fault_injector.h"
#include "tests/support/engine_harness.h"
#include "tests/support/test_models.h"

// Engine::Create is asked for an impossible pool below: under AddressSanitizer
// the allocation must fail as it does in a normal build, not abort.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

namespace mcserve::testing {
namespace {

using engine::EngineOptions;

const std::string& Dir() {
  static const std::string* dir = new std::string(
      WriteTestModel(SmallConfig(model::MemoryRule::kDelta, true, model::Aggregation::kGrm, 8,
                                 model::Boundary::kContinue),
                     /*seed=*/21));
  return *dir;
}

EngineOptions Options() {
  EngineOptions o;
  o.max_sessions = 8;
  o.intra_op_threads = 1;
  return o;
}

std::vector<int32_t> Prompt(int i) {
  std::vector<int32_t> p;
  for (int j = 0; j < 20 + 3 * i; ++j) p.push_back((j * 7 + i * 17) % 250);
  return p;
}

// Sessions s0..s3, one request each, all in flight together (ids r0..r3).
// `quiet` prefills its prompt but generates nothing: the run without the
// fault that the faulty one is compared with (decode batches are then the
// same in both, and a batch's GEMMs round by its size).
std::vector<EngineResult> RunFour(EngineHarness& h, int quiet = -1) {
  std::vector<PendingRequest> pending;
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(h.CreateSession(absl::StrCat("s", i)).ok());
  }
  for (int i = 0; i < 4; ++i) {
    pending.push_back(h.Start(absl::StrCat("s", i), Prompt(i), i == quiet ? 0 : 10));
  }
  std::vector<EngineResult> out;
  for (PendingRequest& p : pending) out.push_back(p.Wait());
  return out;
}

// The same tokens with the same log-probabilities up to rounding: which
// requests the engine batches together depends on when its loop wakes (and,
// without a failed request, differs from the clean run), and a batched
// matrix product rounds by batch size.
void ExpectSameOutputs(const EngineResult& got, const EngineResult& want, int i) {
  EXPECT_EQ(got.tokens, want.tokens) << i;
  ASSERT_EQ(got.logprobs.size(), want.logprobs.size()) << i;
  for (size_t t = 0; t < want.logprobs.size(); ++t) {
    EXPECT_NEAR(got.logprobs[t], want.logprobs[t], 1e-4) << i << " token " << t;
  }
}

TEST(FaultInjectionTest, AFailedPrefillLeavesTheOtherRequestsUnchanged) {
  EngineHarness clean(Dir(), Options());
  const std::vector<EngineResult> want = RunFour(clean, /*quiet=*/2);

  FaultInjector faults;
  faults.Arm("model.prefill", "r2");
  EngineHarness h(Dir(), Options(), nullptr, model::CkptDtype::kFloat32, &faults);
  const std::vector<EngineResult> got = RunFour(h);
  EXPECT_EQ(faults.fired(), 1);
  EXPECT_EQ(got[2].status.code(), absl::StatusCode::kInternal) << got[2].status;
  EXPECT_NE(got[2].status.message().find("injected fault"), std::string::npos) << got[2].status;
  for (int i : {0, 1, 3}) {
    ASSERT_TRUE(got[i].status.ok()) << i << ": " << got[i].status;
    ExpectSameOutputs(got[i], want[i], i);
  }

  // s2's state may be half-written: DATA_LOSS for everything that would read
  // it, until it is deleted; the others carry on.
  const EngineResult again = h.Generate("s2", Prompt(5), 2);
  EXPECT_EQ(again.status.code(), absl::StatusCode::kDataLoss) << again.status;
  EXPECT_NE(again.status.message().find("damaged"), std::string::npos) << again.status;
  EXPECT_EQ(h.ForkSession("s2", "f").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(h.ExportSession("s2").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(h.GetSession("s2").ok());
  EXPECT_TRUE(h.DeleteSession("s2").ok());
  EXPECT_TRUE(h.Generate("s1", Prompt(6), 2).status.ok());
  EXPECT_TRUE(h.AuditState().ok()) << h.AuditState();
}

TEST(FaultInjectionTest, AFailedAllocationRefusesOneRequestAndDamagesNothing) {
  EngineHarness clean(Dir(), Options());
  PendingRequest w0 = clean.Start("", Prompt(0), 6);
  PendingRequest w1 = clean.Start("", Prompt(1), 0);  // the same steps, without the fault
  PendingRequest w2 = clean.Start("", Prompt(2), 6);
  const EngineResult want0 = w0.Wait(), want2 = w2.Wait();
  ASSERT_TRUE(w1.Wait().status.ok());

  FaultInjector faults;
  faults.Arm("state.allocate", "request r1");
  EngineHarness h(Dir(), Options(), nullptr, model::CkptDtype::kFloat32, &faults);
  PendingRequest a = h.Start("", Prompt(0), 6);
  PendingRequest b = h.Start("", Prompt(1), 6);
  PendingRequest c = h.Start("", Prompt(2), 6);
  const EngineResult ra = a.Wait(), rb = b.Wait(), rc = c.Wait();
  EXPECT_EQ(rb.status.code(), absl::StatusCode::kResourceExhausted) << rb.status;
  ASSERT_TRUE(ra.status.ok() && rc.status.ok());
  ExpectSameOutputs(ra, want0, 0);
  ExpectSameOutputs(rc, want2, 2);

  // A fork that cannot copy its state on first write fails that request
  // only; the session is not damaged (nothing was written) and serves next.
  ASSERT_TRUE(h.CreateSession("p").ok());
  ASSERT_TRUE(h.Generate("p", Prompt(3), 0).status.ok());
  ASSERT_TRUE(h.ForkSession("p", "child").ok());
  faults.Arm("state.allocate", "child");
  EXPECT_EQ(h.Generate("child", Prompt(4), 2).status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(h.Generate("child", Prompt(4), 2).status.ok());
  EXPECT_TRUE(h.AuditState().ok()) << h.AuditState();
  EXPECT_EQ(h.SettledStatus().running, 0);
}

TEST(FaultInjectionTest, AKernelErrorInADecodeStepFailsThatStepOnlyAndTheEngineServesOn) {
  FaultInjector faults;
  EngineHarness h(Dir(), Options(), nullptr, model::CkptDtype::kFloat32, &faults);
  ASSERT_TRUE(h.CreateSession("s").ok());
  faults.Arm("model.decode", "");
  const EngineResult r = h.Generate("s", Prompt(0), 4);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInternal) << r.status;
  EXPECT_EQ(h.Generate("s", Prompt(0), 4).status.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(h.Generate("", Prompt(1), 4).status.ok());
  EXPECT_TRUE(h.AuditState().ok()) << h.AuditState();
}

TEST(FaultInjectionTest, CreateReportsPoolsThatDoNotFitInsteadOfThrowing) {
  model::ModelOptions opts;
  auto m = model::McModel::Load(Dir(), opts);
  ASSERT_TRUE(m.ok());
  EngineOptions o = Options();
  o.checkpoint_pool_bytes = int64_t{1} << 52;  // terabytes of slots
  auto e = engine::Engine::Create(*std::move(m), o, Clock::Real());
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kResourceExhausted) << e.status();
  EXPECT_NE(e.status().message().find("cannot allocate the state pools"), std::string::npos)
      << e.status();
}

}  // namespace
}  // namespace mcserve::testing
