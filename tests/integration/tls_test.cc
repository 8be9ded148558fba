// TLS and mutual TLS on the gRPC listener (server/rpc/transport_security.h)
// with certificates made at test time by openssl, real handshakes over
// loopback: a client trusting the CA is served, one trusting another CA or
// speaking plaintext is refused; under mTLS a client without a certificate
// or with one from another CA is refused at the handshake; an expired
// certificate is refused; a certificate rotated on disk is served to new
// connections while a stream in flight carries on; mcserve-cli speaks TLS.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "tests/support/generate_helpers.h"
#include "tests/support/server_process.h"
#include "tests/support/test_models.h"

#ifndef MCSERVE_CLI_BIN
#error "MCSERVE_CLI_BIN must name the mcserve-cli binary"
#endif

namespace mcserve::testing {
namespace {

void Sh(const std::string& cmd) {
  ASSERT_EQ(std::system((cmd + " > /dev/null 2>&1").c_str()), 0) << cmd;
}

// dir/NAME-ca.pem (+ key): a CA. Then certificates signed by it.
void MakeCa(const std::string& dir, const std::string& name) {
  Sh(absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=", name, " -keyout ",
                  dir, "/", name, "-ca.key -out ", dir, "/", name, "-ca.pem"));
}

// dir/NAME.pem and dir/NAME.key signed by CA `ca`, valid for `days` (<0:
// already expired), for localhost / 127.0.0.1.
void MakeCert(const std::string& dir, const std::string& ca, const std::string& name,
              int days = 2) {
  const std::string p = absl::StrCat(dir, "/", name);
  Sh(absl::StrCat("openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout ", p,
                  ".key -out ", p, ".csr"));
  std::ofstream(p + ".ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  Sh(absl::StrCat("openssl x509 -req -in ", p, ".csr -CA ", dir, "/", ca, "-ca.pem -CAkey ", dir,
                  "/", ca, "-ca.key -CAcreateserial -days ", days, " -extfile ", p, ".ext -out ", p,
                  ".pem"));
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(FreshDir("tls_certs"));
    MakeCa(*dir_, "one");
    MakeCa(*dir_, "two");
    MakeCert(*dir_, "one", "server");
    MakeCert(*dir_, "two", "server-two");
    MakeCert(*dir_, "one", "client");
    MakeCert(*dir_, "two", "client-two");
    MakeCert(*dir_, "one", "expired", -1);
  }
  static std::string F(const std::string& name) { return absl::StrCat(*dir_, "/", name); }

  static std::unique_ptr<ServerProcess> Serve(const std::string& cert, const std::string& key,
                                              std::vector<std::string> extra = {}) {
    extra.push_back("--tls_cert=" + cert);
    extra.push_back("--tls_key=" + key);
    auto s = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR, extra);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  // GetModelInfo over a fresh channel with `o`; the call's status.
  static absl::Status Call(const ServerProcess& s, const client::TransportOptions& o) {
    auto ch = client::MakeChannel(s.address(), o);
    if (!ch.ok()) return ch.status();
    client::Client c(*ch);
    return c.GetModelInfo().status();
  }

  static std::string* dir_;
};
std::string* TlsTest::dir_ = nullptr;

client::TransportOptions Trusting(const std::string& ca) {
  client::TransportOptions o;
  o.ca_file = ca;
  return o;
}

TEST_F(TlsTest, ServesClientsTrustingItsCaAndRefusesOthers) {
  auto s = Serve(F("server.pem"), F("server.key"));
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(Call(*s, Trusting(F("one-ca.pem"))).ok());
  const absl::Status wrong_ca = Call(*s, Trusting(F("two-ca.pem")));
  EXPECT_EQ(wrong_ca.code(), absl::StatusCode::kUnavailable) << wrong_ca;
  const absl::Status plain = Call(*s, client::TransportOptions());
  EXPECT_EQ(plain.code(), absl::StatusCode::kUnavailable) << plain;
  // A certificate for another name: refused, unless the client names it.
  client::TransportOptions other = Trusting(F("one-ca.pem"));
  other.server_name = "mcserve.example";
  EXPECT_EQ(Call(*s, other).code(), absl::StatusCode::kUnavailable);
  other.server_name = "localhost";
  EXPECT_TRUE(Call(*s, other).ok());
}

TEST_F(TlsTest, MutualTlsRefusesClientsWithoutACertificateFromTheCa) {
  auto s = Serve(F("server.pem"), F("server.key"), {"--tls_client_ca=" + F("one-ca.pem")});
  ASSERT_NE(s, nullptr);
  client::TransportOptions o = Trusting(F("one-ca.pem"));
  EXPECT_EQ(Call(*s, o).code(), absl::StatusCode::kUnavailable);  // no certificate
  o.cert_file = F("client-two.pem");
  o.key_file = F("client-two.key");
  EXPECT_EQ(Call(*s, o).code(), absl::StatusCode::kUnavailable);  // another CA's
  o.cert_file = F("client.pem");
  o.key_file = F("client.key");
  EXPECT_TRUE(Call(*s, o).ok());
}

TEST_F(TlsTest, AnExpiredCertificateIsRefused) {
  auto s = Serve(F("expired.pem"), F("expired.key"));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(Call(*s, Trusting(F("one-ca.pem"))).code(), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, ARotatedCertificateIsServedWhileAStreamCarriesOn) {
  const std::string live = FreshDir("tls_live");
  std::filesystem::copy_file(F("server.pem"), live + "/tls.pem");
  std::filesystem::copy_file(F("server.key"), live + "/tls.key");
  auto s = Serve(live + "/tls.pem", live + "/tls.key", {"--tls_reload_interval=1s"});
  ASSERT_NE(s, nullptr);
  auto ch = client::MakeChannel(s->address(), Trusting(F("one-ca.pem")));
  ASSERT_TRUE(ch.ok());
  client::Client c(*ch);
  ASSERT_TRUE(c.GetModelInfo().ok());
  auto stream = std::async(std::launch::async,
                           [&c] { return Collect(c, LongRequest("Memory caching ", 400)); });
  // Rotate to CA two's certificate (written aside, then renamed into place).
  std::filesystem::copy_file(F("server-two.pem"), live + "/new.pem");
  std::filesystem::copy_file(F("server-two.key"), live + "/new.key");
  std::filesystem::rename(live + "/new.key", live + "/tls.key");
  std::filesystem::rename(live + "/new.pem", live + "/tls.pem");
  // New connections get the new certificate within the reload interval.
  absl::Status rotated = absl::UnknownError("not tried");
  for (int i = 0; i < 50 && !rotated.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    rotated = Call(*s, Trusting(F("two-ca.pem")));
  }
  EXPECT_TRUE(rotated.ok()) << rotated;
  EXPECT_EQ(Call(*s, Trusting(F("one-ca.pem"))).code(), absl::StatusCode::kUnavailable);
  const Completion done = stream.get();
  EXPECT_TRUE(done.status.ok()) << done.status;  // the old connection's stream finished
  EXPECT_EQ(done.tokens.size(), 400u);
}

TEST_F(TlsTest, CliConnectsOverTls) {
  auto s = Serve(F("server.pem"), F("server.key"), {"--tls_client_ca=" + F("one-ca.pem")});
  ASSERT_NE(s, nullptr);
  ProcessResult r =
      RunProgram(MCSERVE_CLI_BIN, {"--addr=" + s->address(), "--tls_ca=" + F("one-ca.pem"),
                                   "--tls_cert=" + F("client.pem"), "--tls_key=" + F("client.key"),
                                   "generate", "--temperature=0", "--max_tokens=4", "@ k=7 ? k="});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  ProcessResult refused = RunProgram(
      MCSERVE_CLI_BIN, {"--addr=" + s->address(), "--tls_ca=" + F("one-ca.pem"), "info"});
  EXPECT_EQ(refused.exit_code, 3) << refused.output;  // unreachable: the handshake failed
}

// Kubernetes' gRPC probes speak plaintext: with TLS on, --health_listen
// gives them a plaintext port that serves only grpc.health.v1.
TEST_F(TlsTest, PlaintextHealthListenerServesProbesAndNothingElse) {
  const std::string port_file = FreshDir("tls_health") + "/port";
  auto s = Serve(F("server.pem"), F("server.key"),
                 {"--health_listen=127.0.0.1:0", "--health_port_file=" + port_file});
  ASSERT_NE(s, nullptr);
  std::string port;
  for (int i = 0; i < 100 && port.empty(); ++i) {
    std::ifstream(port_file) >> port;
    if (port.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(port.empty());
  client::Client probe("127.0.0.1:" + port);
  absl::StatusOr<bool> h = probe.Health();
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(*h);
  EXPECT_EQ(probe.GetModelInfo().status().code(), absl::StatusCode::kUnimplemented);
  // The main port still speaks only TLS.
  EXPECT_EQ(Call(*s, client::TransportOptions()).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Call(*s, Trusting(F("one-ca.pem"))).ok());
}

TEST_F(TlsTest, IncompleteOrUnreadableTlsFlagsStopStartupNamingThem) {
  auto no_key = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR, {"--tls_cert=" + F("server.pem")},
                                     absl::Seconds(20));
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find("--tls_cert needs --tls_key"), std::string::npos)
      << no_key.status();
  auto bad = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR,
                                  {"--tls_cert=" + F("server.key"), "--tls_key=" + F("server.key")},
                                  absl::Seconds(20));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("holds no PEM CERTIFICATE"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace mcserve::testing
