// libFuzzer target: the metrics endpoint's request path. Raw bytes are one
// connection's input to cpp-httplib's request parser with mcserve's /metrics
// routes (server/metrics/metrics_routes.h, with a bearer token), served
// request after request as on a keep-alive connection. Every response must be
// a well-formed status line that is not a 5xx, and the metrics (2xx) only go
// to a GET or HEAD of /metrics whose first Authorization header carries the
// token.
//
// Debian's cpp-httplib is a shared library built without coverage, so the
// parser itself is not instrumented: crashes, aborts, hangs and leaks in it
// are caught, coverage guidance comes from mcserve's routes and the HTTP
// dictionary (fuzz/metrics_http.dict).
#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "server/metrics/metrics_routes.h"

namespace {

constexpr char kToken[] = "fuzz-token";

// One connection: reads come from the fuzz input, writes are kept.
class InputStream : public httplib::Stream {
 public:
  InputStream(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool is_readable() const override { return pos_ < size_; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, size_ - pos_);
    std::memcpy(ptr, data_ + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 9400;
  }
  socket_t socket() const override { return 0; }

  bool done() const { return pos_ >= size_; }
  std::string TakeOutput() { return std::exchange(out_, {}); }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string out_;
};

class MetricsServer : public httplib::Server {
 public:
  MetricsServer() {
    auto registry = std::make_shared<prometheus::Registry>();
    prometheus::BuildCounter().Name("fuzz_total").Help("x").Register(*registry).Add({}).Increment();
    mcserve::metrics::InstallMetricsRoutes(*this, registry, kToken);
  }
  // One request from `in`; false once the connection is closed.
  bool Serve(InputStream& in, httplib::Request* seen) {
    bool closed = false;
    process_request(in, /*close_connection=*/false, closed,
                    [seen](httplib::Request& r) { *seen = r; });
    return !closed;
  }
};

// The status code of the response at the start of `out`, or -1.
int StatusOf(const std::string& out) {
  if (out.compare(0, 9, "HTTP/1.1 ") != 0 || out.size() < 12) return -1;
  int code = 0;
  for (int i = 9; i < 12; ++i) {
    if (out[i] < '0' || out[i] > '9') return -1;
    code = code * 10 + (out[i] - '0');
  }
  return code;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static MetricsServer* server = new MetricsServer();
  InputStream in(data, size);
  for (int i = 0; i < 16 && !in.done(); ++i) {
    httplib::Request seen;
    const bool open = server->Serve(in, &seen);
    std::string out = in.TakeOutput();
    if (out.empty()) break;  // nothing parsed, nothing answered
    int status = StatusOf(out);
    while (status == 100) {  // "Expect: 100-continue" answered, then the response
      const size_t end = out.find("\r\n\r\n");
      out = end == std::string::npos ? "" : out.substr(end + 4);
      status = StatusOf(out);
    }
    if (status < 200 || status >= 500) std::abort();
    if (status < 300) {  // 200, or 206 for a Range request
      const bool get = seen.method == "GET" || seen.method == "HEAD";
      if (!get || seen.path != "/metrics" ||
          seen.get_header_value("Authorization") != std::string("Bearer ") + kToken) {
        std::abort();
      }
    }
    if (!open) break;
  }
  return 0;
}
