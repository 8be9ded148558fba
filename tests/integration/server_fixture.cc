#include "tests/integration/server_fixture.h"

#include "absl/time/clock.h"
#include "server/model/weights.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {

std::unique_ptr<ServerProcess> ServerTest::server_;

const std::string& TestModelDir() {
  static const std::string* dir = [] {
    auto* d = new std::string(FreshDir("server_model"));
    model::ModelConfig c = SmallConfig(model::MemoryRule::kDelta, true, model::Aggregation::kGrm,
                                       /*segment_length=*/8, model::Boundary::kContinue);
    absl::Status s = model::WriteRandomModel(c, *d, /*seed=*/42);
    if (!s.ok()) ADD_FAILURE() << s;
    return d;
  }();
  return *dir;
}

void ServerTest::StartServer(const std::vector<std::string>& flags) {
  auto p = ServerProcess::Start(TestModelDir(), flags);
  ASSERT_TRUE(p.ok()) << p.status();
  server_ = *std::move(p);
}

void ServerTest::SetUpTestSuite() {
  StartServer({"--max_prompt_tokens=512", "--max_sessions=8", "--max_tokens_limit=1000000"});
}

void ServerTest::TearDownTestSuite() {
  if (server_ == nullptr) return;
  std::optional<int> code = server_->Signal(SIGTERM);
  EXPECT_EQ(code, 0) << server_->Log();
  server_.reset();
}

void ServerTest::WaitIdle() {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    auto s = client().GetServerStatus();
    ASSERT_TRUE(s.ok()) << s.status();
    if (s->running_requests() == 0 && s->waiting_requests() == 0) return;
    absl::SleepFor(absl::Milliseconds(10));
  }
  FAIL() << "server did not become idle";
}

}  // namespace mcserve::testing
