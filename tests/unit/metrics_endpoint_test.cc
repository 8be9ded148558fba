// The /metrics endpoint (server/metrics/http_exposer.h) over real sockets:
// scrapes answered while 50 idle connections are held open, concurrent
// scrapes, idle connections closed after the read timeout, IPv6, bearer
// auth, and HTTPS with a certificate made at test time by openssl, read by
// cpp-httplib's client verifying it against that CA.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/metrics/http_exposer.h"
#include "tests/support/test_models.h"

namespace mcserve::metrics {
namespace {

std::shared_ptr<prometheus::Registry> Registry() {
  auto r = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("mcserve_test_total")
      .Help("a test counter")
      .Register(*r)
      .Add({})
      .Increment(3);
  return r;
}

std::unique_ptr<HttpExposer> Start(ExposerOptions o) {
  if (o.listen.empty()) o.listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<HttpExposer>> e = HttpExposer::Start(o, Registry());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *std::move(e) : nullptr;
}

// A TCP connection to 127.0.0.1:port that sends nothing.
int IdleConnection(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(MetricsEndpointTest, ServesTheRegistryAndRefusesOtherPathsAndMethods) {
  auto e = Start({});
  ASSERT_NE(e, nullptr);
  httplib::Client c("127.0.0.1", e->port());
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r->body.find("mcserve_test_total 3"), std::string::npos) << r->body;
  auto other = c.Get("/");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  auto post = c.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
}

TEST(MetricsEndpointTest, FiftyIdleConnectionsDoNotDelayAScrape) {
  auto e = Start({});
  ASSERT_NE(e, nullptr);
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) idle.push_back(IdleConnection(e->port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // all accepted and waiting
  httplib::Client c("127.0.0.1", e->port());
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.Get("/metrics");
  const double took = SecondsSince(t0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(took, 1.0);
  // Eight scrapes at once, all answered.
  std::vector<std::future<int>> scrapes;
  for (int i = 0; i < 8; ++i) {
    scrapes.push_back(std::async(std::launch::async, [&e] {
      httplib::Client k("127.0.0.1", e->port());
      auto res = k.Get("/metrics");
      return res ? res->status : -1;
    }));
  }
  for (auto& s : scrapes) EXPECT_EQ(s.get(), 200);
  for (int fd : idle) ::close(fd);
}

TEST(MetricsEndpointTest, AConnectionThatSendsNothingIsClosedAfterTheReadTimeout) {
  ExposerOptions o;
  o.read_timeout = absl::Milliseconds(300);
  auto e = Start(o);
  ASSERT_NE(e, nullptr);
  const int fd = IdleConnection(e->port());
  const auto t0 = std::chrono::steady_clock::now();
  char b;
  EXPECT_EQ(::recv(fd, &b, 1, 0), 0);  // the server closed it
  EXPECT_LT(SecondsSince(t0), 3.0);
  ::close(fd);
}

TEST(MetricsEndpointTest, ListensOnIpv6) {
  const int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool has_v6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  if (probe >= 0) ::close(probe);
  ASSERT_TRUE(has_v6) << "this machine has no IPv6 loopback";
  ExposerOptions o;
  o.listen = "[::1]:0";
  auto e = Start(o);
  ASSERT_NE(e, nullptr);
  httplib::Client c("::1", e->port());
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(MetricsEndpointTest, BearerTokenIsRequiredWhenConfigured) {
  const std::string dir = testing::FreshDir("metrics_token");
  std::ofstream(dir + "/token") << "s3cret-token\n";
  ExposerOptions o;
  o.bearer_token_file = dir + "/token";
  auto e = Start(o);
  ASSERT_NE(e, nullptr);
  httplib::Client c("127.0.0.1", e->port());
  auto none = c.Get("/metrics");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"mcserve metrics\"");
  auto wrong = c.Get("/metrics", {{"Authorization", "Bearer s3cret-tokem"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto prefix = c.Get("/metrics", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(prefix);
  EXPECT_EQ(prefix->status, 401);
  auto right = c.Get("/metrics", {{"Authorization", "Bearer s3cret-token"}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
  EXPECT_EQ(right->body.find("s3cret"), std::string::npos);  // never echoed
}

TEST(MetricsEndpointTest, ServesHttpsWithACertificateFromFiles) {
  const std::string dir = testing::FreshDir("metrics_tls");
  const std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
      "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout ",
      dir, "/key.pem -out ", dir, "/cert.pem > ", dir, "/openssl.log 2>&1");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ExposerOptions o;
  o.tls_cert_file = dir + "/cert.pem";
  o.tls_key_file = dir + "/key.pem";
  auto e = Start(o);
  ASSERT_NE(e, nullptr);
  httplib::SSLClient c("127.0.0.1", e->port());
  c.set_ca_cert_path((dir + "/cert.pem").c_str());
  c.enable_server_certificate_verification(true);
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("mcserve_test_total 3"), std::string::npos);
  // Plain HTTP to the TLS port gets no metrics.
  httplib::Client plain("127.0.0.1", e->port());
  auto p = plain.Get("/metrics");
  EXPECT_TRUE(!p || p->status != 200);
  // A client that does not trust the certificate is refused at the handshake.
  httplib::SSLClient untrusting("127.0.0.1", e->port());
  untrusting.enable_server_certificate_verification(true);
  untrusting.set_ca_cert_path("/nonexistent-ca.pem");
  EXPECT_FALSE(untrusting.Get("/metrics"));
}

TEST(MetricsEndpointTest, BadOptionsAreRefusedNamingWhat) {
  ExposerOptions o;
  o.listen = "nonsense";
  EXPECT_EQ(HttpExposer::Start(o, Registry()).status().code(), absl::StatusCode::kInvalidArgument);
  o.listen = "127.0.0.1:0";
  o.tls_cert_file = "/nonexistent.pem";
  EXPECT_EQ(HttpExposer::Start(o, Registry()).status().code(),
            absl::StatusCode::kInvalidArgument);  // a key is missing
  o.tls_key_file = "/nonexistent-key.pem";
  absl::Status s = HttpExposer::Start(o, Registry()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("/nonexistent.pem"), std::string::npos) << s;
  o = ExposerOptions();
  o.listen = "127.0.0.1:0";
  o.bearer_token_file = "/nonexistent-token";
  EXPECT_EQ(HttpExposer::Start(o, Registry()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace mcserve::metrics
