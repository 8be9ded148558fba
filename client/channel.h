// Channels to an mcserve server: plaintext, TLS (the server verified against
// a CA bundle) or mutual TLS (the client also presents a certificate).
#ifndef MCSERVE_CLIENT_CHANNEL_H_
#define MCSERVE_CLIENT_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace mcserve::client {

struct TransportOptions {
  std::string ca_file;    // PEM CAs the server's certificate must chain to; set: TLS
  std::string cert_file;  // client certificate chain (PEM), for mutual TLS
  std::string key_file;   // its private key
  // The name the server's certificate must carry, when it differs from the
  // target's host (e.g. connecting by IP to a certificate for a DNS name).
  std::string server_name;

  bool tls() const { return !ca_file.empty(); }
};

// A channel to `target` ("HOST:PORT"). FAILED_PRECONDITION naming the file
// for one that cannot be read; INVALID_ARGUMENT for an incomplete set.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const TransportOptions& o);

}  // namespace mcserve::client

#endif  // MCSERVE_CLIENT_CHANNEL_H_
