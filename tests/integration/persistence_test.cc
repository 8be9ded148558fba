// Sessions that outlive the server (--session_dir, server/session_store.h):
// SIGTERM mid-stream or SIGKILL, restart on the same directory, and every
// session continues with exactly the tokens it would have produced without
// the restart (compared with a server that was never restarted and was fed
// the same history); a live server's sessions are never taken by another.
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

// Snapshot files under `dir` (each server keeps its own directory in it).
int CountSnapshots(const std::string& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    n += e.path().extension() == ".mcsnap";
  }
  return n;
}

bool HasFile(const std::string& dir, const std::string& name) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.path().filename() == name) return true;
  }
  return false;
}

std::vector<std::string> SessionIds(client::Client& c) {
  std::vector<std::string> ids;
  absl::StatusOr<std::vector<v1::Session>> all = c.ListSessions();
  if (!all.ok()) return {all.status().ToString()};
  for (const v1::Session& s : *all) ids.push_back(s.session_id());
  return ids;
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
  EXPECT_EQ(CountSnapshots(dir), 2);  // restored, and kept until replaced
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
  EXPECT_TRUE(HasFile(dir, "broken.mcsnap.rejected"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/broken.mcsnap"));
  EXPECT_NE(s->Log().find("session not restored"), std::string::npos);
  EXPECT_EQ(s->Signal(SIGTERM), 0);
}

// A crash (SIGKILL: no drain, nothing written at exit) loses nothing that
// ended more than --session_save_interval before it: the restarted server
// continues every session, forks included, exactly as a server that never
// died, and a session deleted before the crash stays deleted.
TEST(PersistenceTest, SessionsSurviveSigkillBeyondTheSaveInterval) {
  const std::string dir = FreshDir("sessions_kill");
  const std::vector<std::string> flags = {"--session_dir=" + dir, "--session_save_interval=100ms"};
  auto a = Start(flags);
  auto ref = Start({});
  ASSERT_TRUE(a && ref);
  client::Client& ca = a->client();
  client::Client& cr = ref->client();
  // The same turns on both servers.
  auto turn = [&](const std::string& session, const std::string& prompt) {
    const Completion x = Collect(ca, LongRequest(prompt, 9, session));
    const Completion y = Collect(cr, LongRequest(prompt, 9, session));
    ASSERT_TRUE(x.status.ok() && y.status.ok()) << x.status << y.status;
    EXPECT_EQ(x.tokens, y.tokens);
  };
  for (const char* id : {"s1", "s2", "gone"}) {
    ASSERT_TRUE(ca.CreateSession(id).ok());
    ASSERT_TRUE(cr.CreateSession(id).ok());
  }
  ASSERT_NO_FATAL_FAILURE(turn("s1", "the first turn of s1 "));
  ASSERT_NO_FATAL_FAILURE(turn("s2", "s2 begins here "));
  ASSERT_NO_FATAL_FAILURE(turn("gone", "soon deleted "));
  ASSERT_NO_FATAL_FAILURE(turn("s1", "and its second turn "));
  ASSERT_TRUE(ca.ForkSession("s1", "f1").ok());
  ASSERT_TRUE(cr.ForkSession("s1", "f1").ok());
  ASSERT_NO_FATAL_FAILURE(turn("f1", "the fork goes its own way "));
  absl::SleepFor(absl::Milliseconds(600));  // several save intervals
  ASSERT_TRUE(ca.DeleteSession("gone").ok());
  absl::SleepFor(absl::Milliseconds(600));
  EXPECT_EQ(CountSnapshots(dir), 3);
  EXPECT_EQ(a->Signal(SIGKILL), -SIGKILL);

  auto b = Start(flags);
  ASSERT_TRUE(b);
  client::Client& cb = b->client();
  EXPECT_EQ(SessionIds(cb), (std::vector<std::string>{"f1", "s1", "s2"})) << b->Log();
  for (const char* id : {"s1", "s2", "f1"}) {
    absl::StatusOr<v1::Session> got = cb.GetSession(id);
    absl::StatusOr<v1::Session> want = cr.GetSession(id);
    ASSERT_TRUE(got.ok() && want.ok()) << id;
    EXPECT_EQ(got->num_tokens(), want->num_tokens()) << id;
    const Completion x = Collect(cb, LongRequest(" after the crash", 12, id));
    const Completion y = Collect(cr, LongRequest(" after the crash", 12, id));
    ASSERT_TRUE(x.status.ok() && y.status.ok()) << x.status << y.status;
    EXPECT_EQ(x.tokens, y.tokens) << id;
  }
  EXPECT_EQ(b->Signal(SIGTERM), 0);
  EXPECT_EQ(ref->Signal(SIGTERM), 0);
}

// Two servers on one volume: the second takes nothing from the first while
// the first lives (its lock), and everything once it is gone.
TEST(PersistenceTest, ALiveServersSessionsAreNotTakenByAnother) {
  const std::string dir = FreshDir("sessions_shared");
  const std::vector<std::string> flags = {"--session_dir=" + dir, "--session_save_interval=100ms"};
  auto first = Start(flags);
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->client().CreateSession("mine").ok());
  ASSERT_TRUE(Collect(first->client(), LongRequest("kept by the first ", 5, "mine")).status.ok());
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_EQ(CountSnapshots(dir), 1);
  auto second = Start(flags);
  ASSERT_TRUE(second);
  EXPECT_EQ(SessionIds(second->client()), std::vector<std::string>{});
  EXPECT_EQ(SessionIds(first->client()), std::vector<std::string>{"mine"});
  EXPECT_EQ(first->Signal(SIGKILL), -SIGKILL);
  auto third = Start(flags);
  ASSERT_TRUE(third);
  EXPECT_EQ(SessionIds(third->client()), std::vector<std::string>{"mine"});
  EXPECT_EQ(SessionIds(second->client()), std::vector<std::string>{});
}

}  // namespace
}  // namespace mcserve::testing
