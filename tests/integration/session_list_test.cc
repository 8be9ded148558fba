// ListSessions pages through the sessions in id order, with each one's size
// and last use, over real gRPC.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "mcserve/v1/generation.grpc.pb.h"
#include "tests/integration/server_fixture.h"

namespace mcserve::testing {
namespace {

class SessionListTest : public ServerTest {
 protected:
  v1::ListSessionsResponse Page(uint32_t size, const std::string& token, grpc::Status* status) {
    auto stub = v1::Generation::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::ListSessionsRequest req;
    req.set_page_size(size);
    req.set_page_token(token);
    v1::ListSessionsResponse resp;
    *status = stub->ListSessions(&ctx, req, &resp);
    return resp;
  }
  static std::vector<std::string> Ids(const v1::ListSessionsResponse& r) {
    std::vector<std::string> ids;
    for (const v1::Session& s : r.sessions()) ids.push_back(s.session_id());
    return ids;
  }
};

TEST_F(SessionListTest, PagesFollowTheIdsAndNeverRepeatOrSkip) {
  for (const char* id : {"s4", "s1", "s5", "s3", "s2"})
    ASSERT_TRUE(client().CreateSession(id).ok());
  grpc::Status st;
  v1::ListSessionsResponse p1 = Page(2, "", &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(Ids(p1), (std::vector<std::string>{"s1", "s2"}));
  ASSERT_FALSE(p1.next_page_token().empty());
  // Changes between pages: s3 (the next page's first) goes, s0 (before
  // the cursor) and s6 come.
  ASSERT_TRUE(client().DeleteSession("s3").ok());
  ASSERT_TRUE(client().CreateSession("s0").ok());
  ASSERT_TRUE(client().CreateSession("s6").ok());
  v1::ListSessionsResponse p2 = Page(2, p1.next_page_token(), &st);
  EXPECT_EQ(Ids(p2), (std::vector<std::string>{"s4", "s5"}));
  v1::ListSessionsResponse p3 = Page(2, p2.next_page_token(), &st);
  EXPECT_EQ(Ids(p3), (std::vector<std::string>{"s6"}));
  EXPECT_EQ(p3.next_page_token(), "");
  // Default page size 100: everything at once; the client reads every page.
  EXPECT_EQ(Ids(Page(0, "", &st)), (std::vector<std::string>{"s0", "s1", "s2", "s4", "s5", "s6"}));
  EXPECT_EQ(client().ListSessions()->size(), 6u);

  Page(1001, "", &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "page_size must be at most 1000, got 1001");
  for (const char* id : {"s0", "s1", "s2", "s4", "s5", "s6"}) {
    ASSERT_TRUE(client().DeleteSession(id).ok());
  }
}

TEST_F(SessionListTest, EachSessionComesWithItsSizeAndLastUse) {
  const int64_t before = absl::ToUnixMillis(absl::Now());
  ASSERT_TRUE(client().CreateSession("sized").ok());
  const int64_t created = absl::ToUnixMillis(absl::Now());
  grpc::Status st;
  v1::Session s = Page(0, "", &st).sessions(0);
  EXPECT_GE(s.last_used_unix_ms(), before);
  EXPECT_LE(s.last_used_unix_ms(), created);
  EXPECT_EQ(s.num_checkpoints(), 0u);

  absl::SleepFor(absl::Milliseconds(20));
  const int64_t start = absl::ToUnixMillis(absl::Now());
  v1::GenerateRequest turn = TextRequest("twenty tokens of text", 4, "sized");
  turn.mutable_sampling_params()->set_ignore_eos(true);
  ASSERT_TRUE(Collect(client(), turn).status.ok());
  const int64_t end = absl::ToUnixMillis(absl::Now());
  s = Page(0, "", &st).sessions(0);
  EXPECT_GE(s.last_used_unix_ms(), start);
  EXPECT_LE(s.last_used_unix_ms(), end);
  // BOS + 21 + 4 = 26 tokens: three whole 8-token segments.
  EXPECT_EQ(s.num_tokens(), 26u);
  EXPECT_EQ(s.num_checkpoints(), 3u);
  EXPECT_EQ(s.checkpoint_bytes(), 3 * client().GetModelInfo()->checkpoint_bytes());
  EXPECT_EQ(s.state_bytes(), client().GetModelInfo()->state_bytes());
  ASSERT_TRUE(client().DeleteSession("sized").ok());
}

}  // namespace
}  // namespace mcserve::testing
