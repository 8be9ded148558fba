#include "server/metrics/http_exposer.h"

#include <httplib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/metrics/metrics_routes.h"
#include "server/util/http_listener.h"
#include "server/util/text_file.h"

namespace mcserve::metrics {

absl::StatusOr<std::unique_ptr<HttpExposer>> HttpExposer::Start(
    const ExposerOptions& o, std::shared_ptr<prometheus::Registry> registry) {
  std::string host;
  int port = 0;
  if (absl::Status st = ParseListenAddress(o.listen, &host, &port); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("metrics ", st.message()));
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("metrics TLS needs both a certificate and a key file");
  }
  std::string token;
  if (!o.bearer_token_file.empty()) {
    absl::StatusOr<std::string> t = ReadTextFile(o.bearer_token_file);
    if (!t.ok()) return absl::FailedPreconditionError(t.status().message());
    token = std::string(absl::StripAsciiWhitespace(*t));
    if (token.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("metrics bearer token file ", o.bearer_token_file, " is empty"));
    }
  }
  std::unique_ptr<httplib::Server> server;
  if (!o.tls_cert_file.empty()) {
    auto ssl =
        std::make_unique<httplib::SSLServer>(o.tls_cert_file.c_str(), o.tls_key_file.c_str());
    if (!ssl->is_valid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "metrics TLS: cannot use certificate ", o.tls_cert_file, " with key ", o.tls_key_file));
    }
    server = std::move(ssl);
  } else {
    server = std::make_unique<httplib::Server>();
  }
  InstallMetricsRoutes(*server, std::move(registry), std::move(token));

  absl::StatusOr<int> bound =
      BindHttpServer(*server, HttpListenOptions{o.listen, o.max_connections, o.read_timeout});
  if (!bound.ok()) {
    return absl::Status(bound.status().code(), absl::StrCat("metrics: ", bound.status().message()));
  }
  return std::unique_ptr<HttpExposer>(new HttpExposer(std::move(server), *bound));
}

HttpExposer::HttpExposer(std::unique_ptr<httplib::Server> server, int port)
    : server_(std::move(server)), port_(port) {
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

HttpExposer::~HttpExposer() {
  server_->stop();
  thread_.join();
}

}  // namespace mcserve::metrics
