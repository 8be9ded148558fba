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

TEST(ConnectionFlagsTest, MaxConcurrentStreamsMakesASecondCallWait) {
  for (bool limited : {true, false}) {
    auto s = Start(limited ? std::vector<std::string>{"--grpc_max_concurrent_streams=1"}
                           : std::vector<std::string>{});
    ASSERT_NE(s, nullptr);
    auto ch = Channel(*s);
    client::Client c(ch);
    ASSERT_TRUE(c.GetModelInfo().ok());  // connected, and the server's limit received
    // When the stream's last message (the one with its finish reason) arrived.
    std::atomic<int64_t> last_ns{0}, first_ns{0};
    auto now_ns = [] { return Clock::now().time_since_epoch().count(); };
    auto stream = std::async(std::launch::async, [&] {
      return c.Generate(LongRequest("Memory caching ", 400), [&](const v1::GenerateResponse& r) {
        if (first_ns == 0) first_ns = now_ns();
        if (r.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) last_ns = now_ns();
      });
    });
    while (first_ns == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(last_ns.load(), 0) << "the stream ended too soon to test with";
    ASSERT_TRUE(c.GetModelInfo().ok());
    const int64_t unary_ns = now_ns();
    ASSERT_TRUE(stream.get().ok());
    ASSERT_GT(last_ns.load(), first_ns.load());
    // With one stream per connection the unary call could start only after
    // the stream's end; without the limit it overtakes it. The two times are
    // taken on different client threads (the stream's reader may record its
    // last message a moment after the unary call returned on a loaded
    // machine), so the test asks where in the stream the unary call returned:
    // in its last half when limited, in its first half otherwise.
    const double at = static_cast<double>(unary_ns - first_ns.load()) /
                      static_cast<double>(last_ns.load() - first_ns.load());
    if (limited) {
      EXPECT_GT(at, 0.5) << "limited, returned at " << at << " of the stream";
    } else {
      EXPECT_LT(at, 0.5) << "unlimited, returned at " << at << " of the stream";
    }
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
