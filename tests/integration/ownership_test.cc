// Sessions bound to their owner and per-principal quotas (engine/owner.h,
// rpc/caller_scope.h) over real gRPC with bearer tokens: another
// principal's session does not exist on any session RPC, names never
// collide across principals, an admin sees and deletes everyone's,
// ownership survives export/import and a restart, and a principal at its
// quota is refused with RESOURCE_EXHAUSTED naming the quota while the
// others' outputs stay what they are on an idle server.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/rpc/auth.h"
#include "tests/support/generate_helpers.h"
#include "tests/support/server_process.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

constexpr char kAlice[] = "alice-token-31f0";
constexpr char kCarol[] = "carol-token-77b2";
constexpr char kRoot[] = "root-token-0a9c";

// Carol's quotas are her own; alice has the server's defaults (none).
std::string PrincipalsFile(const std::string& dir, const std::string& carol_quota) {
  const std::string path = dir + "/principals";
  std::ofstream(path) << "token " << rpc::TokenDigestHex(kAlice) << " alice user\n"
                      << "token " << rpc::TokenDigestHex(kCarol) << " carol user " << carol_quota
                      << "\n"
                      << "token " << rpc::TokenDigestHex(kRoot) << " root admin\n";
  return path;
}

std::vector<std::string> Ids(const absl::StatusOr<std::vector<v1::Session>>& all) {
  std::vector<std::string> out;
  if (!all.ok()) return {absl::StrCat("error: ", all.status().ToString())};
  for (const v1::Session& s : *all) out.push_back(s.session_id());
  std::sort(out.begin(), out.end());
  return out;
}

class OwnershipTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& carol_quota, std::vector<std::string> flags = {}) {
    if (dir_.empty()) dir_ = FreshDir("ownership");
    flags.push_back("--auth_principals=" + PrincipalsFile(dir_, carol_quota));
    auto s = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR, flags);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  client::Client As(const std::string& token) {
    client::Client c(server_->address());
    c.set_bearer_token(token);
    return c;
  }
  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(OwnershipTest, AnotherPrincipalsSessionDoesNotExistForYou) {
  ASSERT_NO_FATAL_FAILURE(StartServer(""));
  client::Client alice = As(kAlice), carol = As(kCarol);
  ASSERT_TRUE(alice.CreateSession("chat").ok());
  ASSERT_TRUE(Collect(alice, TextRequest("alice's secret history", 4, "chat")).status.ok());
  absl::StatusOr<v1::Session> mine = alice.GetSession("chat");
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_EQ(mine->session_id(), "chat");  // her own ids come back unqualified
  EXPECT_GT(mine->num_tokens(), 10u);

  const auto kNotFound = absl::StatusCode::kNotFound;
  EXPECT_EQ(carol.GetSession("chat").status().code(), kNotFound);
  EXPECT_EQ(Collect(carol, TextRequest("x", 2, "chat")).status.code(), kNotFound);
  EXPECT_EQ(carol.ForkSession("chat", "mine").status().code(), kNotFound);
  EXPECT_EQ(carol.ExportSession("chat").status().code(), kNotFound);
  EXPECT_EQ(carol.DeleteSession("chat").code(), kNotFound);
  // A qualified name is not a way in for a user: '/' is not a session id character.
  EXPECT_EQ(carol.GetSession("alice/chat").status().code(), absl::StatusCode::kInvalidArgument);

  // Names never collide: carol's "chat" is hers, new and empty.
  absl::StatusOr<v1::Session> hers = carol.CreateSession("chat");
  ASSERT_TRUE(hers.ok()) << hers.status();
  EXPECT_EQ(hers->num_tokens(), 1u);
  EXPECT_EQ(alice.GetSession("chat")->num_tokens(), mine->num_tokens());

  // A generated id is in the caller's namespace and shown without it.
  absl::StatusOr<v1::Session> gen = alice.CreateSession();
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ(gen->session_id().find('/'), std::string::npos) << gen->session_id();
  EXPECT_EQ(carol.GetSession(gen->session_id()).status().code(), kNotFound);

  EXPECT_EQ(Ids(alice.ListSessions()), (std::vector<std::string>{"chat", gen->session_id()}));
  EXPECT_EQ(Ids(carol.ListSessions()), (std::vector<std::string>{"chat"}));
  EXPECT_EQ(Ids(As(kRoot).ListSessions()),
            (std::vector<std::string>{"alice/chat", "alice/" + gen->session_id(), "carol/chat"}));
}

// The prefix cache is per principal: a hit would tell carol (through
// usage.cached_prompt_tokens, or the time to first token) that someone
// sent alice's prompt.
TEST_F(OwnershipTest, PrincipalsDoNotShareCachedPrefixes) {
  ASSERT_NO_FATAL_FAILURE(StartServer(""));
  client::Client alice = As(kAlice), carol = As(kCarol);
  const std::string prompt(300, 'p');  // one whole 256-token prefill piece after BOS
  const Completion first = Collect(alice, TextRequest(prompt, 2));
  const Completion again = Collect(alice, TextRequest(prompt, 2));
  const Completion other = Collect(carol, TextRequest(prompt, 2));
  ASSERT_TRUE(first.status.ok() && again.status.ok() && other.status.ok());
  EXPECT_EQ(first.last.usage().cached_prompt_tokens(), 0u);
  EXPECT_EQ(again.last.usage().cached_prompt_tokens(), 256u);
  EXPECT_EQ(other.last.usage().cached_prompt_tokens(), 0u);
  EXPECT_EQ(other.tokens, first.tokens);
  EXPECT_EQ(Collect(carol, TextRequest(prompt, 2)).last.usage().cached_prompt_tokens(), 256u);
}

TEST_F(OwnershipTest, AdminSeesAndDeletesEverySession) {
  ASSERT_NO_FATAL_FAILURE(StartServer(""));
  client::Client alice = As(kAlice), root = As(kRoot);
  ASSERT_TRUE(alice.CreateSession("chat").ok());
  absl::StatusOr<v1::Session> seen = root.GetSession("alice/chat");
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->session_id(), "alice/chat");
  // The admin's own namespace is separate too.
  EXPECT_EQ(root.GetSession("chat").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(root.GetSession("nobody/chat").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(root.DeleteSession("alice/chat").ok());
  EXPECT_EQ(alice.GetSession("chat").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(OwnershipTest, AbortReachesOnlyYourOwnRequests) {
  ASSERT_NO_FATAL_FAILURE(StartServer("", {"--max_tokens_limit=100000"}));
  client::Client alice = As(kAlice), carol = As(kCarol), root = As(kRoot);
  v1::GenerateRequest long_req = LongRequest("run until stopped ", 100000);
  long_req.set_request_id("r1");
  Completion run;
  std::thread t([&] { run = Collect(alice, long_req); });
  // Carol's "r1" is not alice's: NOT_FOUND, and alice's stream goes on.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool running = false;
  while (!running && absl::Now() < deadline) {
    absl::StatusOr<v1::ServerStatus> st = root.GetServerStatus();
    running = st.ok() && st->running_requests() == 1;
    if (!running) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(running);
  EXPECT_EQ(carol.Abort("r1").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(carol.Abort("alice/r1").code(), absl::StatusCode::kNotFound);  // carol's "alice/r1"
  // The admin reaches it by its full id.
  ASSERT_TRUE(root.Abort("alice/r1").ok());
  t.join();
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.last.finish_reason(), v1::FINISH_REASON_CANCELLED);
  EXPECT_EQ(run.request_id, "r1");  // shown to alice as she named it
  EXPECT_GT(run.tokens.size(), 0u);
}

TEST_F(OwnershipTest, ImportedSessionsBelongToTheImporterAndRestartsKeepOwners) {
  const std::string sessions = FreshDir("ownership-sessions");
  ASSERT_NO_FATAL_FAILURE(StartServer("", {"--session_dir=" + sessions}));
  client::Client alice = As(kAlice), carol = As(kCarol);
  ASSERT_TRUE(alice.CreateSession("chat").ok());
  ASSERT_TRUE(Collect(alice, TextRequest("a shared history ", 3, "chat")).status.ok());
  absl::StatusOr<std::string> snap = alice.ExportSession("chat");
  ASSERT_TRUE(snap.ok()) << snap.status();
  // Carol imports alice's snapshot (handed to her out of band): the copy
  // is carol's, under the snapshot's name, in her namespace.
  absl::StatusOr<v1::Session> copy = carol.ImportSession(*snap);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(copy->session_id(), "chat");
  const Completion a = Collect(alice, TextRequest(" goes on", 12, "chat"));
  const Completion c = Collect(carol, TextRequest(" goes on", 12, "chat"));
  ASSERT_TRUE(a.status.ok() && c.status.ok()) << a.status << c.status;
  EXPECT_EQ(a.tokens, c.tokens);  // the same state, two owners

  const uint64_t alice_tokens = alice.GetSession("chat")->num_tokens();
  ASSERT_TRUE(carol.DeleteSession("chat").ok());
  ASSERT_TRUE(carol.CreateSession("notes").ok());
  EXPECT_EQ(server_->Signal(SIGTERM), 0) << server_->Log();

  ASSERT_NO_FATAL_FAILURE(StartServer("", {"--session_dir=" + sessions}));
  alice = As(kAlice);
  carol = As(kCarol);
  EXPECT_EQ(Ids(alice.ListSessions()), (std::vector<std::string>{"chat"}));
  EXPECT_EQ(Ids(carol.ListSessions()), (std::vector<std::string>{"notes"}));
  EXPECT_EQ(alice.GetSession("chat")->num_tokens(), alice_tokens);
  EXPECT_EQ(carol.GetSession("chat").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(OwnershipTest, QuotasRefuseTheirOwnerByNameAndNobodyElse) {
  // The default model: 32-token segments; its checkpoint size from GetModelInfo.
  ASSERT_NO_FATAL_FAILURE(StartServer("sessions=2 requests=1", {"--max_tokens_limit=100000"}));
  const uint64_t ckpt = As(kAlice).GetModelInfo()->checkpoint_bytes();
  ASSERT_GT(ckpt, 0u);
  {
    // requests=1 (on this server, where no checkpoint quota bounds carol's
    // request): while one of carol's runs, her next is refused at once,
    // and alice is served.
    client::Client alice = As(kAlice), carol = As(kCarol);
    v1::GenerateRequest long_one = LongRequest("keep going ", 100000);
    long_one.set_request_id("runs");
    RunningStream running(carol, long_one);
    ASSERT_TRUE(running.Running()) << running.Stop().status;
    const Completion second = Collect(carol, LongRequest("y", 4));
    EXPECT_EQ(second.status.code(), absl::StatusCode::kResourceExhausted) << second.status;
    EXPECT_NE(second.status.message().find("quota 'requests' of principal 'carol'"),
              std::string::npos)
        << second.status;
    EXPECT_TRUE(Collect(alice, LongRequest("y", 4)).status.ok());
    EXPECT_FALSE(running.Ended());
    const Completion ended = running.Stop();
    EXPECT_TRUE(ended.status.ok()) << ended.status;
    EXPECT_EQ(ended.last.finish_reason(), v1::FINISH_REASON_CANCELLED);
    EXPECT_TRUE(Collect(carol, LongRequest("y", 4)).status.ok());  // her quota is free again
  }
  ASSERT_NO_FATAL_FAILURE(
      StartServer(absl::StrCat("sessions=2 requests=1 checkpoint_bytes=", 4 * ckpt),
                  {"--max_tokens_limit=100000"}));
  client::Client alice = As(kAlice), carol = As(kCarol);

  ASSERT_TRUE(carol.CreateSession("a").ok());
  ASSERT_TRUE(carol.ForkSession("a", "b").ok());
  absl::Status third = carol.CreateSession("c").status();
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted) << third;
  EXPECT_NE(third.message().find("quota 'sessions' of principal 'carol'"), std::string::npos)
      << third;
  EXPECT_EQ(carol.ForkSession("a", "c").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(carol.ImportSession(*carol.ExportSession("a")).status().code(),
            absl::StatusCode::kResourceExhausted);
  for (const char* id : {"a", "b", "c"}) EXPECT_TRUE(alice.CreateSession(id).ok()) << id;

  // checkpoint_bytes: 4 checkpoints = 128 tokens; a request that may go
  // past them is refused before it runs, one that cannot is served.
  const Completion big = Collect(carol, LongRequest("x", 200));
  EXPECT_EQ(big.status.code(), absl::StatusCode::kResourceExhausted) << big.status;
  EXPECT_NE(big.status.message().find("quota 'checkpoint_bytes'"), std::string::npos) << big.status;
  EXPECT_TRUE(Collect(carol, LongRequest("x", 100)).status.ok());
  EXPECT_TRUE(Collect(alice, LongRequest("x", 200)).status.ok());
}

// One principal hammering its quota changes nothing for another: alice's
// greedy outputs are the idle server's, every one of her requests is
// served, carol's refusals come back at once, and alice's latency beside
// carol's flood is her latency beside carol's one allowed request.
TEST_F(OwnershipTest, APrincipalAtItsQuotaLeavesOthersUnchanged) {
  ASSERT_NO_FATAL_FAILURE(StartServer("requests=1", {"--max_tokens_limit=100000"}));
  const std::vector<std::string> prompts = {"first question ", "second one ", "and a third ",
                                            "a fourth ", "the last "};
  // Alice's requests, timed; their tokens must be `expected` when given.
  auto alice_round = [&](const std::vector<std::vector<uint32_t>>* expected) {
    client::Client alice = As(kAlice);
    std::vector<std::vector<uint32_t>> out;
    const absl::Time t0 = absl::Now();
    for (size_t i = 0; i < prompts.size(); ++i) {
      Completion c = Collect(alice, LongRequest(prompts[i], 32));
      EXPECT_TRUE(c.status.ok()) << c.status;
      if (expected != nullptr) {
        EXPECT_EQ(c.tokens, (*expected)[i]) << prompts[i];
      }
      out.push_back(c.tokens);
    }
    return std::make_pair(out, absl::Now() - t0);
  };
  // Carol's `threads` loops of requests while `round` runs.
  struct Flood {
    int served = 0, refused = 0;
    absl::Duration slowest_refusal;
  };
  auto beside_carol = [&](int threads, const std::vector<std::vector<uint32_t>>& expected) {
    std::atomic<bool> stop{false};
    absl::Mutex mu;
    Flood f;
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) {
      ts.emplace_back([&] {
        client::Client carol = As(kCarol);
        while (!stop.load()) {
          const absl::Time t0 = absl::Now();
          const Completion c = Collect(carol, LongRequest("flood ", 16));
          absl::MutexLock l(&mu);
          if (c.status.code() == absl::StatusCode::kResourceExhausted) {
            ++f.refused;
            f.slowest_refusal = std::max(f.slowest_refusal, absl::Now() - t0);
          } else if (c.status.ok()) {
            ++f.served;
          }
        }
      });
    }
    absl::SleepFor(absl::Milliseconds(50));
    const absl::Duration t = alice_round(&expected).second;
    stop.store(true);
    for (std::thread& th : ts) th.join();
    return std::make_pair(f, t);
  };

  const auto [idle, idle_time] = alice_round(nullptr);
  const auto [one, one_time] = beside_carol(1, idle);
  const auto [flood, flood_time] = beside_carol(6, idle);
  std::cout << "alice's 5 requests: idle " << absl::FormatDuration(idle_time)
            << ", beside carol's one request " << absl::FormatDuration(one_time)
            << ", beside carol's flood at her quota " << absl::FormatDuration(flood_time)
            << " (carol served " << flood.served << ", refused " << flood.refused
            << ", slowest refusal " << absl::FormatDuration(flood.slowest_refusal) << ")\n";
  EXPECT_EQ(one.refused, 0);
  EXPECT_GT(flood.refused, 0);
  EXPECT_GT(flood.served, 0);
  EXPECT_LT(flood.slowest_refusal, absl::Seconds(2));
  // Loose (shared CI machines): refusals cost next to nothing, so the flood
  // may not make alice much slower than carol's one admitted request does.
  EXPECT_LT(flood_time, one_time * 3 + absl::Milliseconds(500));
}

}  // namespace
}  // namespace mcserve::testing
