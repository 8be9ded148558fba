#include "server/metrics/http_exposer.h"

#include <httplib.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/util/text_file.h"

namespace mcserve::metrics {
namespace {

constexpr int kListenBacklog = 1024;

// httplib's task queue: a thread per connection, at most `cap` at once; the
// rest wait in order. A thread that finishes takes the next waiting
// connection before it exits. The threads share the queue's state through a
// shared_ptr, so none touches freed memory after shutdown() returns and
// httplib deletes the queue.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(int cap) : st_(std::make_shared<State>()) { st_->cap = cap; }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> l(st_->mu);
    if (st_->running >= st_->cap) {
      st_->waiting.push_back(std::move(fn));
      return;
    }
    ++st_->running;
    std::thread([st = st_, fn = std::move(fn)]() mutable { Run(st, std::move(fn)); }).detach();
  }

  void shutdown() override {
    std::unique_lock<std::mutex> l(st_->mu);
    st_->done.wait(l, [this] { return st_->running == 0; });
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable done;
    int cap = 1;
    int running = 0;
    std::deque<std::function<void()>> waiting;
  };

  static void Run(std::shared_ptr<State> st, std::function<void()> fn) {
    for (;;) {
      fn();  // httplib's connection handler; it catches its handlers' exceptions
      std::unique_lock<std::mutex> l(st->mu);
      if (st->waiting.empty()) {
        --st->running;
        st->done.notify_all();
        return;
      }
      fn = std::move(st->waiting.front());
      st->waiting.pop_front();
    }
  }

  std::shared_ptr<State> st_;
};

// Equal strings, in time that depends only on their lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < a.size(); ++i) {
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(a[i]) ^ y;
  }
  return diff == 0;
}

absl::Status ParseListen(const std::string& listen, std::string* host, int* port) {
  const size_t colon = listen.rfind(':');
  absl::string_view h =
      colon == std::string::npos ? "" : absl::string_view(listen).substr(0, colon);
  if (absl::StartsWith(h, "[") && absl::EndsWith(h, "]")) h = h.substr(1, h.size() - 2);
  if (colon == std::string::npos || h.empty() ||
      !absl::SimpleAtoi(absl::string_view(listen).substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", listen, "' is not HOST:PORT (IPv6: [HOST]:PORT)"));
  }
  *host = std::string(h);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpExposer>> HttpExposer::Start(
    const ExposerOptions& o, std::shared_ptr<prometheus::Registry> registry) {
  std::string host;
  int port = 0;
  if (absl::Status st = ParseListen(o.listen, &host, &port); !st.ok()) return st;
  if (o.max_connections < 1 || o.read_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("metrics max_connections and read_timeout must be > 0");
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
  const int cap = o.max_connections;
  server->new_task_queue = [cap] { return new ConnectionThreads(cap); };
  const int64_t timeout_us = absl::ToInt64Microseconds(o.read_timeout);
  server->set_read_timeout(timeout_us / 1000000, timeout_us % 1000000);
  server->set_write_timeout(timeout_us / 1000000, timeout_us % 1000000);
  server->set_keep_alive_timeout(std::max<int64_t>(1, timeout_us / 1000000));

  server->Get("/metrics", [registry, token](const httplib::Request& req, httplib::Response& res) {
    if (!token.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      const bool bearer = absl::StartsWith(auth, "Bearer ");
      if (!bearer || !ConstantTimeEquals(absl::string_view(auth).substr(7), token)) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer realm=\"mcserve metrics\"");
        res.set_content("a bearer token is required\n", "text/plain");
        return;
      }
    }
    res.set_content(prometheus::TextSerializer().Serialize(registry->Collect()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET");
    res.set_content("GET only\n", "text/plain");
  };
  server->Post(".*", not_allowed);
  server->Put(".*", not_allowed);
  server->Delete(".*", not_allowed);
  server->Patch(".*", not_allowed);
  server->Get(".*", [](const httplib::Request&, httplib::Response& res) {
    res.status = 404;
    res.set_content("metrics are at /metrics\n", "text/plain");
  });

  // httplib listens with a backlog of 5, so a burst of connections (50 idle
  // ones, say) has the kernel drop the SYNs of a scrape for seconds. Keep the
  // socket it binds and listen again with a longer queue.
  auto listening = std::make_shared<int>(-1);
  server->set_socket_options([listening](int fd) {
    httplib::default_socket_options(fd);
    *listening = fd;
  });
  const int bound =
      port == 0 ? server->bind_to_any_port(host) : (server->bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.listen));
  }
  if (*listening >= 0) ::listen(*listening, kListenBacklog);
  return std::unique_ptr<HttpExposer>(new HttpExposer(std::move(server), bound));
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
