// Transport security of the gRPC listener: plaintext, TLS with a certificate
// and key from files, or mutual TLS when a client CA is given (a client
// without a certificate signed by that CA is refused at the handshake). The
// files are watched: a rotated certificate, key or CA is picked up within
// `reload_interval` by new handshakes, and connections already open (and
// their streams) carry on.
#ifndef MCSERVE_SERVER_RPC_TRANSPORT_SECURITY_H_
#define MCSERVE_SERVER_RPC_TRANSPORT_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mcserve::rpc {

struct TlsOptions {
  std::string cert_file;       // PEM certificate chain; empty: plaintext
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM CA bundle; set: mutual TLS
  absl::Duration reload_interval = absl::Seconds(10);

  bool enabled() const { return !cert_file.empty(); }
  bool mutual() const { return !client_ca_file.empty(); }
};

// The listener's credentials. INVALID_ARGUMENT naming the flag (--tls_*)
// for an incomplete set, FAILED_PRECONDITION naming the file for one that
// cannot be read or holds no PEM block of the expected kind.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsOptions& o);

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_TRANSPORT_SECURITY_H_
