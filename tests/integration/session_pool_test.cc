// The checkpoint pool through the real server over gRPC: a load of many
// sessions against a deliberately tiny pool runs to the end with the same
// tokens as a roomy server, eviction counts and lossy marks are reported by
// GetSession, GetServerStatus and the log; ForkSession, ExportSession and
// ImportSession work end to end, and bad snapshots are refused.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/model/cache_tensors.h"
#include "server/model/config.h"
#include "tests/integration/server_fixture.h"

namespace mcserve::testing {
namespace {

constexpr int kSessions = 8;
constexpr int kRounds = 3;

int64_t CkptBytes() {
  auto c = model::ModelConfig::Load(TestModelDir() + "/config.json");
  return model::CheckpointBytes(*c, model::CkptDtype::kFloat32);
}

// A server whose device tier holds `device` checkpoints and host `host`.
std::unique_ptr<ServerProcess> StartPool(int device, int host, const std::string& lossy = "none") {
  auto p = ServerProcess::Start(
      TestModelDir(),
      {absl::StrCat("--checkpoint_pool=", device * CkptBytes()),
       absl::StrCat("--host_pool=", host * CkptBytes()), "--lossy_eviction=" + lossy,
       "--max_sessions=64", "--max_tokens_limit=100000",
       "--prefix_cache=false"});  // these tests count every slot
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

std::string Name(int i) { return absl::StrCat("user-", i); }

std::string PromptText(int session, int round) {
  return absl::StrCat("session ", session, " round ", round, ": hi");  // 19-20 bytes
}

// kSessions sessions, each with kRounds requests; the sessions of a round
// run concurrently (one client thread each). Returns tokens per request.
std::vector<std::vector<uint32_t>> RunLoad(client::Client& c) {
  for (int i = 0; i < kSessions; ++i) EXPECT_TRUE(c.CreateSession(Name(i)).ok());
  std::vector<std::vector<uint32_t>> out(kSessions * kRounds);
  for (int r = 0; r < kRounds; ++r) {
    std::vector<std::thread> threads;
    for (int i = 0; i < kSessions; ++i) {
      threads.emplace_back([&c, &out, i, r] {
        Completion done = Collect(c, LongRequest(PromptText(i, r), 12, Name(i)));
        EXPECT_TRUE(done.status.ok()) << done.status;
        out[r * kSessions + i] = done.tokens;
      });
    }
    for (std::thread& t : threads) t.join();
  }
  return out;
}

TEST(SessionPoolTest, ManySessionsOnATinyPoolRunToTheEndLosslessly) {
  // Each session ends with ~97 tokens = 12 checkpoints; 96 in all against
  // 16 device slots.
  auto roomy = StartPool(1024, 0);
  auto tiny = StartPool(16, 96);
  ASSERT_TRUE(roomy && tiny);
  const auto want = RunLoad(roomy->client());
  const auto got = RunLoad(tiny->client());
  EXPECT_EQ(got, want);
  uint64_t offloaded = 0, fetched = 0;
  for (int i = 0; i < kSessions; ++i) {
    auto s = tiny->client().GetSession(Name(i));
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_FALSE(s->lossy());
    EXPECT_EQ(s->checkpoints_on_device() + s->checkpoints_on_host(), s->num_checkpoints());
    offloaded += s->checkpoints_offloaded();
    fetched += s->checkpoints_fetched();
  }
  auto st = tiny->client().GetServerStatus();
  ASSERT_TRUE(st.ok());
  EXPECT_GT(offloaded, 0u);
  EXPECT_GT(fetched, 0u);
  EXPECT_EQ(st->checkpoints_offloaded(), offloaded);
  EXPECT_EQ(st->checkpoints_fetched(), fetched);
  EXPECT_EQ(st->checkpoint_slots_used(), 16u);
  EXPECT_EQ(st->lossy_sessions(), 0u);
  EXPECT_NE(tiny->Log().find("fetched="), std::string::npos);
  for (int i = 0; i < kSessions; ++i) ASSERT_TRUE(tiny->client().DeleteSession(Name(i)).ok());
  st = tiny->client().GetServerStatus();
  EXPECT_EQ(st->checkpoint_slots_used(), 0u);
  EXPECT_EQ(st->host_checkpoint_slots_used(), 0u);
  EXPECT_EQ(tiny->Signal(SIGTERM), 0);
  EXPECT_EQ(roomy->Signal(SIGTERM), 0);
}

TEST(SessionPoolTest, LossyPoliciesKeepServingAndSayWhoLostWhat) {
  for (const std::string policy : {"drop", "merge"}) {
    auto tiny = StartPool(16, 8, policy);
    ASSERT_TRUE(tiny);
    RunLoad(tiny->client());
    int lossy = 0;
    uint64_t lost = 0;
    for (int i = 0; i < kSessions; ++i) {
      auto s = tiny->client().GetSession(Name(i));
      ASSERT_TRUE(s.ok());
      lossy += s->lossy();
      lost += s->checkpoints_dropped() + s->checkpoints_merged();
      EXPECT_EQ(policy == "drop" ? s->checkpoints_merged() : s->checkpoints_dropped(), 0u);
    }
    auto st = tiny->client().GetServerStatus();
    EXPECT_GT(lossy, 0) << policy;
    EXPECT_EQ(st->lossy_sessions(), static_cast<uint32_t>(lossy));
    EXPECT_EQ(st->checkpoints_dropped() + st->checkpoints_merged(), lost);
    EXPECT_NE(tiny->Log().find("lossy=true"), std::string::npos);
    EXPECT_EQ(tiny->Signal(SIGTERM), 0) << policy;
  }
}

TEST(SessionPoolTest, DeadlinesAndFullPoolsFreeEveryCheckpoint) {
  // 64 slots: generation runs until the pool is full (RESOURCE_EXHAUSTED
  // mid-stream). 8192 slots with a 300 ms deadline: DEADLINE_EXCEEDED long
  // before the pool fills. Either way nothing may stay behind.
  for (const int slots : {64, 8192}) {
    const bool full = slots == 64;
    const absl::StatusCode want =
        full ? absl::StatusCode::kResourceExhausted : absl::StatusCode::kDeadlineExceeded;
    auto server = StartPool(slots, 0);
    ASSERT_TRUE(server);
    client::Client& c = server->client();
    client::CallOptions soon;
    if (!full) soon.timeout = absl::Milliseconds(300);
    ASSERT_TRUE(c.CreateSession("kept").ok());
    const Completion one_shot = Collect(c, LongRequest("until stopped", 90000), soon);
    const Completion in_session = Collect(c, LongRequest("until stopped", 90000, "kept"), soon);
    EXPECT_EQ(one_shot.status.code(), want) << one_shot.status;
    EXPECT_EQ(in_session.status.code(), want) << in_session.status;
    // The session keeps what it absorbed; the one-shot request kept nothing.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    v1::Session kept;
    while (absl::Now() < deadline) {
      kept = *c.GetSession("kept");
      if (!kept.busy()) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    v1::ServerStatus st = *c.GetServerStatus();
    EXPECT_EQ(st.checkpoint_slots_used(), kept.num_checkpoints()) << slots;
    ASSERT_TRUE(c.DeleteSession("kept").ok());
    st = *c.GetServerStatus();
    EXPECT_EQ(st.checkpoint_slots_used(), 0u) << slots;
    EXPECT_EQ(server->Signal(SIGTERM), 0);
  }
}

using SessionRpcTest = ServerTest;

TEST_F(SessionRpcTest, ForkAndBothBranchesContinue) {
  ASSERT_TRUE(client().CreateSession("fork-parent").ok());
  ASSERT_TRUE(Collect(client(), TextRequest("a long shared prefix, thirty-two", 0, "fork-parent"))
                  .status.ok());
  auto child = client().ForkSession("fork-parent", "fork-child");
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ(child->num_checkpoints(), 4u);
  const Completion p = Collect(client(), LongRequest(" and then", 10, "fork-parent"));
  const Completion c = Collect(client(), LongRequest(" and then", 10, "fork-child"));
  ASSERT_TRUE(p.status.ok() && c.status.ok());
  EXPECT_EQ(c.tokens, p.tokens);
  auto missing = client().ForkSession("no-such-session");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto bad = client().ForkSession("fork-parent", "bad id!");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(client().DeleteSession("fork-parent").ok());
  ASSERT_TRUE(client().DeleteSession("fork-child").ok());
}

TEST_F(SessionRpcTest, ExportImportRoundTripOverGrpc) {
  ASSERT_TRUE(client().CreateSession("exp").ok());
  ASSERT_TRUE(Collect(client(), TextRequest("remember: the key is 7", 3, "exp")).status.ok());
  auto bytes = client().ExportSession("exp");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // Small chunks: the server joins a client stream of many messages.
  auto imported = client().ImportSession(*bytes, "imp", /*chunk_bytes=*/1000);
  ASSERT_TRUE(imported.ok()) << imported.status();
  auto original = client().GetSession("exp");
  EXPECT_EQ(imported->num_tokens(), original->num_tokens());
  EXPECT_EQ(imported->num_checkpoints(), original->num_checkpoints());
  const Completion a = Collect(client(), LongRequest(" the key is", 8, "exp"));
  const Completion b = Collect(client(), LongRequest(" the key is", 8, "imp"));
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_EQ(b.tokens, a.tokens);

  std::string damaged = *bytes;
  damaged[damaged.size() / 3] ^= 0x40;
  auto r = client().ImportSession(damaged, "dmg");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos) << r.status();
  EXPECT_EQ(client().GetSession("dmg").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client().ImportSession("", "empty").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client().ImportSession(*bytes, "exp").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(client().ExportSession("nope").status().code(), absl::StatusCode::kNotFound);
  for (const char* id : {"exp", "imp"}) ASSERT_TRUE(client().DeleteSession(id).ok());
}

// A snapshot declaring more checkpoints than both tiers hold is refused
// from its header alone: here only the header is ever sent, so the answer
// cannot have waited for the payload.
TEST(SessionPoolTest, AnImportTooBigForThePoolIsRefusedAtItsHeader) {
  auto s = StartPool(4, 0);
  ASSERT_TRUE(s);
  client::Client& c = s->client();
  ASSERT_TRUE(c.CreateSession("src").ok());
  absl::StatusOr<std::string> good = c.ExportSession("src");
  ASSERT_TRUE(good.ok()) << good.status();
  const uint32_t hlen = static_cast<uint8_t>((*good)[12]) | static_cast<uint8_t>((*good)[13]) << 8 |
                        static_cast<uint8_t>((*good)[14]) << 16;
  nlohmann::json h = nlohmann::json::parse(good->substr(16, hlen));
  h["num_checkpoints"] = 500;
  const std::string header = h.dump();
  std::string prefix = good->substr(0, 12);
  for (int i = 0; i < 4; ++i)
    prefix.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
  prefix += header;
  absl::StatusOr<v1::Session> r = c.ImportSession(prefix, "big");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_NE(r.status().message().find("snapshot holds 500 checkpoints"), std::string::npos)
      << r.status();
  // The same prefix with a count that fits is only short.
  h["num_checkpoints"] = 0;
  EXPECT_EQ(c.ImportSession(good->substr(0, 16 + hlen), "short").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(c.GetSession("src").ok());
}

}  // namespace
}  // namespace mcserve::testing
