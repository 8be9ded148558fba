// The gRPC connection flags (server/rpc/connection_options.h) against the
// real binary over loopback, each beside a control server without it:
// --grpc_max_connection_age sends GOAWAY (clients reconnect, a stream in
// flight finishes within the grace), --grpc_max_concurrent_streams makes a
// second call on a connection wait for the first, and out-of-range values
// stop startup. (The keepalive and ping-policing flags are passed to gRPC as
// they are; no test here shows their effect yet.)
#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/support/generate_helpers.h"
#include "tests/support/server_process.h"

namespace mcserve::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<grpc::Channel> Channel(const ServerProcess& s, grpc::ChannelArguments args = {}) {
  return grpc::CreateCustomChannel(s.address(), grpc::InsecureChannelCredentials(), args);
}

// Waits up to `timeout` for the channel to leave READY (a GOAWAY or a
// closed connection); true if it did.
bool LeavesReady(grpc::Channel& ch, absl::Duration timeout) {
  const auto until = Clock::now() + absl::ToChronoMilliseconds(timeout);
  while (Clock::now() < until) {
    if (ch.GetState(false) != GRPC_CHANNEL_READY) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::unique_ptr<ServerProcess> Start(std::vector<std::string> flags) {
  auto s = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR, flags);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

TEST(ConnectionFlagsTest, MaxConnectionAgeSendsGoawayAndStreamsFinishInTheGrace) {
  auto aged = Start({"--grpc_max_connection_age=700ms", "--grpc_max_connection_age_grace=30s"});
  auto plain = Start({});
  ASSERT_TRUE(aged && plain);
  auto ch = Channel(*aged);
  client::Client c(ch);
  ASSERT_TRUE(c.GetModelInfo().ok());
  ASSERT_EQ(ch->GetState(false), GRPC_CHANNEL_READY);
  // A stream that outlives the connection's age still completes.
  auto stream = std::async(std::launch::async,
                           [&c] { return Collect(c, LongRequest("Memory caching ", 200)); });
  EXPECT_TRUE(LeavesReady(*ch, absl::Seconds(5)));
  const Completion done = stream.get();
  EXPECT_TRUE(done.status.ok()) << done.status;
  EXPECT_EQ(done.tokens.size(), 200u);
  // The client reconnects for the next call.
  EXPECT_TRUE(c.GetModelInfo().ok());
  // Control: without the flag the connection stays up.
  auto pch = Channel(*plain);
  client::Client p(pch);
  ASSERT_TRUE(p.GetModelInfo().ok());
  EXPECT_FALSE(LeavesReady(*pch, absl::Seconds(2)));
}

// A stream that only Abort ends holds the connection's one stream: a unary
// call on it cannot start (it times out), one on another connection can;
// without the limit the unary call overtakes the stream on the same
// connection.
TEST(ConnectionFlagsTest, MaxConcurrentStreamsMakesASecondCallWait) {
  for (bool limited : {true, false}) {
    SCOPED_TRACE(limited ? "limited" : "unlimited");
    auto s = Start(limited ? std::vector<std::string>{"--max_tokens_limit=1000000",
                                                      "--grpc_max_concurrent_streams=1"}
                           : std::vector<std::string>{"--max_tokens_limit=1000000"});
    ASSERT_NE(s, nullptr);
    auto ch = Channel(*s);
    client::Client c(ch);
    ASSERT_TRUE(c.GetModelInfo().ok());  // connected, and the server's limit received
    v1::GenerateRequest r = LongRequest("Memory caching ", 1000000);
    r.set_request_id("holds-the-stream");
    RunningStream stream(c, r);
    ASSERT_TRUE(stream.Running()) << stream.Stop().status;
    // Its own connection (gRPC shares one between channels with the same
    // arguments unless told not to): for the unary call that must pass,
    // and for the Abort when the first connection is full.
    grpc::ChannelArguments own;
    own.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    client::Client other(Channel(*s, own));
    ASSERT_TRUE(other.GetModelInfo().ok());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(limited ? 1 : 30));
    v1::ModelInfo info;
    const grpc::Status unary =
        v1::Generation::NewStub(ch)->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info);
    if (limited) {
      EXPECT_EQ(unary.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << unary.error_message();
    } else {
      EXPECT_TRUE(unary.ok()) << unary.error_message();
    }
    EXPECT_FALSE(stream.Ended());
    const Completion ended = stream.Stop(&other);
    EXPECT_TRUE(ended.status.ok()) << ended.status;
    EXPECT_EQ(ended.last.finish_reason(), v1::FINISH_REASON_CANCELLED);
    // The stream's end frees the connection for the next call.
    EXPECT_TRUE(c.GetModelInfo().ok());
  }
}

TEST(ConnectionFlagsTest, OutOfRangeValuesStopStartupNamingTheFlag) {
  auto s = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR, {"--grpc_keepalive_time=1ms"},
                                absl::Seconds(20));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("--grpc_keepalive_time must be at least 10ms"),
            std::string::npos)
      << s.status();
}

}  // namespace
}  // namespace mcserve::testing
