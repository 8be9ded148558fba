#include "tests/support/engine_harness.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/model/weights.h"
#include "server/util/await.h"
#include "tests/support/test_device.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {

struct PendingRequest::Channel : engine::StreamChannel {
  void Send(engine::GenerateUpdate u) override {
    absl::MutexLock l(&mu);
    for (const engine::TokenOut& t : u.tokens) {
      result.tokens.push_back(t.id);
      result.logprobs.push_back(t.logprob);
    }
    if (!u.status.ok()) result.status = u.status;
    if (u.finished) {
      result.reason = u.reason;
      result.usage = u.usage;
    }
    if ((u.finished || !u.status.ok()) && !done.HasBeenNotified()) done.Notify();
  }
  absl::Mutex mu;
  EngineResult result;
  absl::Notification done;
};

EngineResult PendingRequest::Wait() {
  if (!channel_->done.WaitForNotificationWithTimeout(absl::Seconds(120))) {
    ADD_FAILURE() << "request did not finish";
  }
  absl::MutexLock l(&channel_->mu);
  return channel_->result;
}

EngineHarness::EngineHarness(const std::string& model_dir, const engine::EngineOptions& options,
                             Clock* clock, model::CkptDtype ckpt_dtype, FaultInjector* faults,
                             int32_t prefill_piece) {
  model::ModelOptions opts;
  if (prefill_piece > 0) opts.prefill_piece = prefill_piece;
  opts.device = TestDevice();
  opts.ckpt_dtype = ckpt_dtype;
  opts.faults = faults;
  auto m = model::McModel::Load(model_dir, opts);
  EXPECT_TRUE(m.ok()) << m.status();
  engine::EngineOptions o = options;
  if (faults != nullptr) o.faults = faults;
  auto e = engine::Engine::Create(*std::move(m), o, clock ? clock : Clock::Real());
  EXPECT_TRUE(e.ok()) << e.status();
  engine_ = *std::move(e);
}

PendingRequest EngineHarness::Start(const std::string& session_id,
                                    const std::vector<int32_t>& prompt, int32_t max_tokens) {
  PendingRequest p;
  p.channel_ = std::make_shared<PendingRequest::Channel>();
  engine::NewRequest r;
  r.request_id = absl::StrCat("r", next_id_++);
  r.session_id = session_id;
  r.prompt = prompt;
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  r.params.return_logprobs = true;
  r.channel = p.channel_;
  p.handle_ = engine_->Submit(std::move(r));
  return p;
}

using InfoOr = absl::StatusOr<engine::SessionInfo>;

InfoOr EngineHarness::CreateSession(const std::string& id) {
  return Await<InfoOr>([&](auto cb) { engine_->CreateSession(id, cb); });
}

InfoOr EngineHarness::GetSession(const std::string& id) {
  return Await<InfoOr>([&](auto cb) { engine_->GetSession(id, cb); });
}

absl::Status EngineHarness::AuditState() {
  return Await<absl::Status>([&](auto cb) { engine_->AuditState(cb); });
}

absl::Status EngineHarness::DeleteSession(const std::string& id) {
  return Await<absl::Status>([&](auto cb) { engine_->DeleteSession(id, cb); });
}

InfoOr EngineHarness::ForkSession(const std::string& parent, const std::string& child) {
  return Await<InfoOr>([&](auto cb) { engine_->ForkSession(parent, child, cb); });
}

absl::StatusOr<std::string> EngineHarness::ExportSession(const std::string& id) {
  return Await<absl::StatusOr<std::string>>([&](auto cb) { engine_->ExportSession(id, cb); });
}

InfoOr EngineHarness::ImportSession(const std::string& id, std::string bytes) {
  return Await<InfoOr>([&](auto cb) { engine_->ImportSession(id, std::move(bytes), cb); });
}

engine::EngineStatus EngineHarness::SettledStatus() {
  return Await<engine::EngineStatus>([&](auto cb) { engine_->GetStatus(cb); });
}

std::string WriteTestModel(const model::ModelConfig& config, uint64_t seed) {
  const std::string dir = FreshDir("engine_model");
  absl::Status s = model::WriteRandomModel(config, dir, seed);
  EXPECT_TRUE(s.ok()) << s;
  return dir;
}

}  // namespace mcserve::testing
