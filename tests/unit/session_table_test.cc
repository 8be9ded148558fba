// The session table on its own: names, the limit, the shared checks, expiry.
#include "server/engine/session_table.h"

#include <gtest/gtest.h>

namespace mcserve::engine {
namespace {

const absl::Time kT0 = absl::UnixEpoch();

TEST(SessionTableTest, AddsNamedAndGeneratedSessionsUnderTheLimit) {
  SessionTable t(2);
  absl::StatusOr<Session*> a = t.Add("a", 256, 8, kT0);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->pending_token, 256);
  EXPECT_TRUE((*a)->chain.valid());
  EXPECT_EQ(t.Add("a", 256, 8, kT0).status().code(), absl::StatusCode::kAlreadyExists);
  absl::StatusOr<Session*> g = t.Add("", 256, 8, kT0);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ((*g)->id.rfind("sess-", 0), 0u) << (*g)->id;
  const absl::Status full = t.Add("c", 256, 8, kT0).status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("--max_sessions"), std::string::npos) << full;
  EXPECT_EQ(t.Ids().size(), 2u);
}

TEST(SessionTableTest, IdleRefusesBusyAndDamagedSessions) {
  SessionTable t(4);
  Session* s = *t.Add("s", 256, 8, kT0);
  EXPECT_EQ(t.Find("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(t.Idle("s", "fork").ok());
  s->busy_with = 7;
  const absl::Status busy = t.Idle("s", "fork").status();
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(busy.message().find("fork it when idle"), std::string::npos) << busy;
  s->busy_with = 0;
  s->broken = true;
  EXPECT_EQ(t.Idle("s", "export").status().code(), absl::StatusCode::kDataLoss);
}

TEST(SessionTableTest, ExpireDeletesOnlyIdleSessionsPastTheirTtl) {
  SessionTable t(4);
  ASSERT_TRUE(t.Add("old", 256, 8, kT0).ok());
  Session* busy = *t.Add("busy", 256, 8, kT0);
  busy->busy_with = 3;
  ASSERT_TRUE(t.Add("new", 256, 8, kT0 + absl::Minutes(9)).ok());
  const auto gone = t.Expire(kT0 + absl::Minutes(10), absl::Minutes(5));
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].first, "old");
  EXPECT_EQ(gone[0].second, absl::Minutes(10));
  EXPECT_EQ(t.size(), 2);
}

}  // namespace
}  // namespace mcserve::engine
