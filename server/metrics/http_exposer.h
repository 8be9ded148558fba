// A minimal HTTP/1.1 server for Prometheus scrapes: GET /metrics returns
// the registry in the text exposition format (0.0.4); anything else is 404.
// One thread, one connection at a time, "Connection: close".
//
// Why not prometheus-cpp's Exposer: Debian's CivetWeb refuses to start its
// worker threads inside a process that has loaded Debian's LibTorch
// ("Cannot create first worker thread: error 0", reproduced with a 10-line
// program), so the server exposes metrics itself.
#ifndef MCSERVE_SERVER_METRICS_HTTP_EXPOSER_H_
#define MCSERVE_SERVER_METRICS_HTTP_EXPOSER_H_

#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace mcserve::metrics {

class HttpExposer {
 public:
  // Listens on `listen` ("HOST:PORT"; PORT 0 picks a free one) and serves
  // `registry` until destroyed.
  static absl::StatusOr<std::unique_ptr<HttpExposer>> Start(
      const std::string& listen, std::shared_ptr<prometheus::Registry> registry);
  ~HttpExposer();
  HttpExposer(const HttpExposer&) = delete;
  HttpExposer& operator=(const HttpExposer&) = delete;

  int port() const { return port_; }

 private:
  HttpExposer(int fd, int port, std::shared_ptr<prometheus::Registry> registry);
  void Serve();
  void Answer(int conn);

  const int fd_;
  const int port_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace mcserve::metrics

#endif  // MCSERVE_SERVER_METRICS_HTTP_EXPOSER_H_
