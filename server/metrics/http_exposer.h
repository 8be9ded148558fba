// The Prometheus scrape endpoint: GET /metrics returns the registry in the
// text exposition format (0.0.4); other paths are 404, other methods 405.
// Built on cpp-httplib (Debian's libcpp-httplib): each connection is served
// on its own thread (up to max_connections at once; more wait their turn),
// a connection that sends nothing is closed after read_timeout, so idle or
// slow clients cannot hold a scrape back. IPv4 and IPv6 ("[::1]:9400",
// "[::]:9400"); optional TLS and bearer-token auth, the two ways Prometheus
// authenticates a scrape (scrape_config tls_config, authorization).
//
// Why not prometheus-cpp's Exposer: Debian's CivetWeb refuses to start its
// worker threads inside a process that has loaded Debian's LibTorch
// ("Cannot create first worker thread: error 0", reproduced with a 10-line
// program).
#ifndef MCSERVE_SERVER_METRICS_HTTP_EXPOSER_H_
#define MCSERVE_SERVER_METRICS_HTTP_EXPOSER_H_

#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace httplib {
class Server;
}

namespace mcserve::metrics {

struct ExposerOptions {
  std::string listen;  // "HOST:PORT" or "[V6HOST]:PORT"; PORT 0 picks a free one
  // Both set: serve HTTPS with this certificate chain and key (PEM files).
  std::string tls_cert_file;
  std::string tls_key_file;
  // Set: a scrape must send "Authorization: Bearer <token>", the token being
  // this file's content (surrounding whitespace ignored); else 401.
  std::string bearer_token_file;
  int max_connections = 256;
  absl::Duration read_timeout = absl::Seconds(5);
};

class HttpExposer {
 public:
  // Listens and serves `registry` until destroyed. INVALID_ARGUMENT for a bad
  // address or options, UNAVAILABLE when the address cannot be bound,
  // FAILED_PRECONDITION for unreadable or invalid TLS or token files.
  static absl::StatusOr<std::unique_ptr<HttpExposer>> Start(
      const ExposerOptions& options, std::shared_ptr<prometheus::Registry> registry);
  ~HttpExposer();
  HttpExposer(const HttpExposer&) = delete;
  HttpExposer& operator=(const HttpExposer&) = delete;

  int port() const { return port_; }

 private:
  HttpExposer(std::unique_ptr<httplib::Server> server, int port);

  std::unique_ptr<httplib::Server> server_;
  int port_;
  std::thread thread_;
};

}  // namespace mcserve::metrics

#endif  // MCSERVE_SERVER_METRICS_HTTP_EXPOSER_H_
