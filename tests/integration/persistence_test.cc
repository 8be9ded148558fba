// Drain without losing sessions: SIGTERM mid-stream, restart on the same
// --session_dir, and every session continues with exactly the tokens it
// would have produced without the restart (compared with a server that was
// never restarted and was fed the same history).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/integration/server_fixture.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

std::unique_ptr<ServerProcess> Start(const std::vector<std::string>& flags) {
  auto p = ServerProcess::Start(TestModelDir(), flags);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

int CountSnapshots(const std::string& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    n += e.path().extension() == ".mcsnap";
  }
  return n;
}

TEST(PersistenceTest, SessionsSurviveARestartMidStream) {
  const std::string dir = FreshDir("sessions");
  const std::vector<std::string> flags = {"--session_dir=" + dir, "--shutdown_grace=1s",
                                          "--max_tokens_limit=1000000"};
  auto first = Start(flags);
  ASSERT_TRUE(first);
  client::Client& c1 = first->client();
  ASSERT_TRUE(c1.CreateSession("idle").ok());
  const Completion idle1 = Collect(c1, LongRequest("a history worth keeping, ", 7, "idle"));
  ASSERT_TRUE(idle1.status.ok());
  ASSERT_TRUE(c1.CreateSession("busy").ok());
  Completion busy1;
  std::thread stream(
      [&] { busy1 = Collect(c1, LongRequest("stream until stopped: ", 1000000, "busy")); });
  // Let the stream run, then stop the server under it.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    auto s = c1.GetSession("busy");
    if (s.ok() && s->num_tokens() > 60) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(first->Signal(SIGTERM), 0) << first->Log();
  stream.join();
  ASSERT_TRUE(busy1.status.ok()) << busy1.status;
  EXPECT_EQ(busy1.last.finish_reason(), v1::FINISH_REASON_ABORTED);
  ASSERT_GT(busy1.tokens.size(), 10u);
  EXPECT_EQ(CountSnapshots(dir), 2) << first->Log();
  EXPECT_NE(first->Log().find("sessions saved"), std::string::npos);

  auto second = Start(flags);
  ASSERT_TRUE(second);
  client::Client& c2 = second->client();
  EXPECT_EQ(CountSnapshots(dir), 0);  // restored, then removed
  auto idle = c2.GetSession("idle");
  ASSERT_TRUE(idle.ok()) << idle.status() << second->Log();
  EXPECT_EQ(idle->num_tokens(), idle1.last.usage().session_tokens());
  auto busy = c2.GetSession("busy");
  ASSERT_TRUE(busy.ok()) << busy.status();
  EXPECT_EQ(busy->num_tokens(), busy1.last.usage().session_tokens());
  const Completion idle2 = Collect(c2, LongRequest("and then", 12, "idle"));
  const Completion busy2 = Collect(c2, LongRequest(" more", 12, "busy"));
  ASSERT_TRUE(idle2.status.ok() && busy2.status.ok());

  // A server that never restarted, fed the same histories.
  auto ref = Start({"--max_tokens_limit=1000000"});
  ASSERT_TRUE(ref);
  client::Client& r = ref->client();
  ASSERT_TRUE(r.CreateSession("idle").ok());
  EXPECT_EQ(Collect(r, LongRequest("a history worth keeping, ", 7, "idle")).tokens, idle1.tokens);
  EXPECT_EQ(Collect(r, LongRequest("and then", 12, "idle")).tokens, idle2.tokens);
  ASSERT_TRUE(r.CreateSession("busy").ok());
  const Completion replay = Collect(
      r, LongRequest("stream until stopped: ", static_cast<uint32_t>(busy1.tokens.size()), "busy"));
  EXPECT_EQ(replay.tokens, busy1.tokens);
  EXPECT_EQ(Collect(r, LongRequest(" more", 12, "busy")).tokens, busy2.tokens);

  EXPECT_EQ(second->Signal(SIGTERM), 0);
  EXPECT_EQ(CountSnapshots(dir), 2);  // saved again
  EXPECT_EQ(ref->Signal(SIGTERM), 0);
}

TEST(PersistenceTest, ADamagedSnapshotIsSetAsideAndTheServerStarts) {
  const std::string dir = FreshDir("sessions_bad");
  { std::ofstream(dir + "/broken.mcsnap") << "not a snapshot"; }
  auto s = Start({"--session_dir=" + dir});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->client().GetSession("broken").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(std::filesystem::exists(dir + "/broken.mcsnap.rejected"));
  EXPECT_NE(s->Log().find("session not restored"), std::string::npos);
  EXPECT_EQ(s->Signal(SIGTERM), 0);
}

}  // namespace
}  // namespace mcserve::testing
