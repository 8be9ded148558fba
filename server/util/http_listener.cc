#include "server/util/http_listener.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mcserve {
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

}  // namespace

absl::Status ParseListenAddress(const std::string& listen, std::string* host, int* port) {
  const size_t colon = listen.rfind(':');
  absl::string_view h =
      colon == std::string::npos ? "" : absl::string_view(listen).substr(0, colon);
  if (absl::StartsWith(h, "[") && absl::EndsWith(h, "]")) h = h.substr(1, h.size() - 2);
  if (colon == std::string::npos || h.empty() ||
      !absl::SimpleAtoi(absl::string_view(listen).substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", listen, "' is not HOST:PORT (IPv6: [HOST]:PORT)"));
  }
  *host = std::string(h);
  return absl::OkStatus();
}

absl::StatusOr<int> BindHttpServer(httplib::Server& server, const HttpListenOptions& o) {
  std::string host;
  int port = 0;
  if (absl::Status st = ParseListenAddress(o.listen, &host, &port); !st.ok()) return st;
  if (o.max_connections < 1 || o.read_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_connections and read_timeout must be > 0");
  }
  const int cap = o.max_connections;
  server.new_task_queue = [cap] { return new ConnectionThreads(cap); };
  const int64_t timeout_us = absl::ToInt64Microseconds(o.read_timeout);
  server.set_read_timeout(timeout_us / 1000000, timeout_us % 1000000);
  server.set_write_timeout(timeout_us / 1000000, timeout_us % 1000000);
  server.set_keep_alive_timeout(std::max<int64_t>(1, timeout_us / 1000000));

  // httplib listens with a backlog of 5, so a burst of connections (50 idle
  // ones, say) has the kernel drop the SYNs of a request for seconds. Keep the
  // socket it binds and listen again with a longer queue.
  auto listening = std::make_shared<int>(-1);
  server.set_socket_options([listening](int fd) {
    httplib::default_socket_options(fd);
    *listening = fd;
  });
  const int bound =
      port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", o.listen));
  if (*listening >= 0) ::listen(*listening, kListenBacklog);
  return bound;
}

}  // namespace mcserve
