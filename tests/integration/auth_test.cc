// Authentication and roles on the gRPC API (server/rpc/auth.h) over real
// gRPC: no credentials or an unknown token is UNAUTHENTICATED, a role that
// may not call an RPC is PERMISSION_DENIED, each role's RPCs work, health
// stays open, the token never reaches the server's log, and under mutual
// TLS the client certificate's name can be the credential.
#include "server/rpc/auth.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "tests/support/generate_helpers.h"
#include "tests/support/server_process.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

constexpr char kUser[] = "alice-token-9d2e";
constexpr char kReader[] = "bob-token-51aa";
constexpr char kAdmin[] = "root-token-c0de";

std::string PrincipalsFile(const std::string& dir, const std::string& extra = "") {
  const std::string path = dir + "/principals";
  std::ofstream(path) << "# principal file for the tests\n"
                      << "token " << rpc::TokenDigestHex(kUser) << " alice user\n"
                      << "token " << rpc::TokenDigestHex(kReader) << " bob reader\n"
                      << "token " << rpc::TokenDigestHex(kAdmin) << " root admin\n"
                      << extra;
  return path;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("auth");
    auto s = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR,
                                  {"--auth_principals=" + PrincipalsFile(dir_)});
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

TEST_F(AuthTest, NoOrUnknownCredentialsAreUnauthenticated) {
  for (const std::string& token : {std::string(), std::string("not-a-token")}) {
    client::Client c = As(token);
    EXPECT_EQ(c.GetModelInfo().status().code(), absl::StatusCode::kUnauthenticated) << token;
    EXPECT_EQ(Collect(c, TextRequest("hi", 2)).status.code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(c.CreateSession("s").status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(c.ImportSession("garbage").status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(c.ExportSession("s").status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(c.GetServerStatus().status().code(), absl::StatusCode::kUnauthenticated);
    // Health stays open: probes carry no credentials.
    absl::StatusOr<bool> h = c.Health();
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_TRUE(*h);
  }
}

TEST_F(AuthTest, EachRoleMayCallItsRpcsAndIsDeniedTheRest) {
  client::Client reader = As(kReader);
  EXPECT_TRUE(reader.GetModelInfo().ok());
  EXPECT_TRUE(reader.Tokenize("abc").ok());
  const Completion denied = Collect(reader, TextRequest("hi", 2));
  EXPECT_EQ(denied.status.code(), absl::StatusCode::kPermissionDenied) << denied.status;
  EXPECT_NE(denied.status.message().find("principal 'bob' (role reader)"), std::string::npos)
      << denied.status;
  EXPECT_EQ(reader.CreateSession("r").status().code(), absl::StatusCode::kPermissionDenied);

  client::Client user = As(kUser);
  const Completion ok = Collect(user, TextRequest("@ k=7 ? k=", 2));
  EXPECT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_TRUE(user.CreateSession("a").ok());
  EXPECT_TRUE(user.ExportSession("a").ok());
  EXPECT_EQ(user.GetServerStatus().status().code(), absl::StatusCode::kPermissionDenied);

  client::Client admin = As(kAdmin);
  EXPECT_TRUE(admin.GetServerStatus().ok());
  EXPECT_TRUE(admin.GetModelInfo().ok());
}

TEST_F(AuthTest, TokensNeverReachTheLog) {
  client::Client user = As(kUser);
  EXPECT_TRUE(Collect(user, TextRequest("hi", 2)).status.ok());
  EXPECT_FALSE(As("wrong-token-zzz").GetModelInfo().ok());
  const std::string log = server_->Log();
  for (const char* t : {kUser, kReader, kAdmin, "wrong-token-zzz"}) {
    EXPECT_EQ(log.find(t), std::string::npos) << t;
    EXPECT_EQ(log.find(rpc::TokenDigestHex(t)), std::string::npos) << t;
  }
}

TEST(AuthFileTest, BadPrincipalsFilesStopStartupNamingTheLine) {
  const std::string dir = FreshDir("auth_bad");
  std::ofstream(dir + "/p") << "token abcd alice user\n";
  auto s = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR, {"--auth_principals=" + dir + "/p"},
                                absl::Seconds(20));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("line 1: a token is given as its SHA-256"), std::string::npos)
      << s.status();
  std::ofstream(dir + "/q") << "token " << rpc::TokenDigestHex("x") << " alice root\n";
  s = ServerProcess::Start(MCSERVE_DEFAULT_MODEL_DIR, {"--auth_principals=" + dir + "/q"},
                           absl::Seconds(20));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("unknown role 'root'"), std::string::npos) << s.status();
}

TEST(AuthTlsTest, TokensOverTlsAndClientCertificatesUnderMutualTls) {
  const std::string dir = FreshDir("auth_tls");
  auto sh = [](const std::string& c) { return std::system((c + " > /dev/null 2>&1").c_str()); };
  ASSERT_EQ(sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca -keyout " + dir +
               "/ca.key -out " + dir + "/ca.pem"),
            0);
  for (const char* n : {"server", "client"}) {
    const std::string p = dir + "/" + n;
    std::ofstream(p + ".ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    ASSERT_EQ(sh(absl::StrCat("openssl req -newkey rsa:2048 -nodes -subj /CN=", n, ".test -keyout ",
                              p, ".key -out ", p, ".csr")),
              0);
    ASSERT_EQ(
        sh(absl::StrCat("openssl x509 -req -in ", p, ".csr -CA ", dir, "/ca.pem -CAkey ", dir,
                        "/ca.key -CAcreateserial -days 2 -extfile ", p, ".ext -out ", p, ".pem")),
        0);
  }
  auto s = ServerProcess::Start(
      MCSERVE_DEFAULT_MODEL_DIR,
      {"--auth_principals=" + PrincipalsFile(dir, "cert client.test carol user\n"),
       "--tls_cert=" + dir + "/server.pem", "--tls_key=" + dir + "/server.key",
       "--tls_client_ca=" + dir + "/ca.pem"});
  ASSERT_TRUE(s.ok()) << s.status();
  client::TransportOptions o;
  o.ca_file = dir + "/ca.pem";
  o.cert_file = dir + "/client.pem";
  o.key_file = dir + "/client.key";
  auto ch = client::MakeChannel((*s)->address(), o);
  ASSERT_TRUE(ch.ok());
  client::Client carol(*ch);  // no token: the certificate (CN client.test) is carol, a user
  EXPECT_TRUE(Collect(carol, TextRequest("hi", 2)).status.ok());
  EXPECT_EQ(carol.GetServerStatus().status().code(), absl::StatusCode::kPermissionDenied);
  client::Client root(*ch);  // a token takes precedence over the certificate
  root.set_bearer_token(kAdmin);
  EXPECT_TRUE(root.GetServerStatus().ok());
}

}  // namespace
}  // namespace mcserve::testing
