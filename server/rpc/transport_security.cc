#include "server/rpc/transport_security.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/util/text_file.h"

namespace mcserve::rpc {
namespace {

// Checks now what the watcher would only log later: the file is readable
// and holds a PEM block whose type contains `kind` (CERTIFICATE, PRIVATE KEY).
absl::Status CheckPem(const std::string& path, absl::string_view flag, absl::string_view kind) {
  absl::StatusOr<std::string> text = ReadTextFile(path);
  if (!text.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("--", flag, ": ", text.status().message()));
  }
  if (!absl::StrContains(*text, "-----BEGIN ") || !absl::StrContains(*text, kind)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--", flag, ": ", path, " holds no PEM ", kind));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsOptions& o) {
  if (!o.enabled()) {
    if (!o.key_file.empty() || o.mutual()) {
      return absl::InvalidArgumentError("--tls_key and --tls_client_ca need --tls_cert");
    }
    return grpc::InsecureServerCredentials();
  }
  if (o.key_file.empty()) return absl::InvalidArgumentError("--tls_cert needs --tls_key");
  if (o.reload_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--tls_reload_interval must be at least 1s");
  }
  if (absl::Status s = CheckPem(o.cert_file, "tls_cert", "CERTIFICATE"); !s.ok()) return s;
  if (absl::Status s = CheckPem(o.key_file, "tls_key", "PRIVATE KEY"); !s.ok()) return s;
  if (o.mutual()) {
    if (absl::Status s = CheckPem(o.client_ca_file, "tls_client_ca", "CERTIFICATE"); !s.ok()) {
      return s;
    }
  }
  const unsigned interval =
      static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(o.reload_interval)));
  auto provider = o.mutual() ? std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                                   o.key_file, o.cert_file, o.client_ca_file, interval)
                             : std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
                                   o.key_file, o.cert_file, interval);
  grpc::experimental::TlsServerCredentialsOptions opts(provider);
  opts.watch_identity_key_cert_pairs();
  if (o.mutual()) {
    opts.watch_root_certs();
    opts.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    opts.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(opts);
}

}  // namespace mcserve::rpc
