// How mcserve's HTTP servers (metrics, the OpenAI front) listen, on
// cpp-httplib: a thread per connection (at most `max_connections` at once,
// the rest wait in order), read and write timeouts so idle or slow clients
// cannot hold others back, a long listen queue, IPv4 and IPv6 addresses.
#ifndef MCSERVE_SERVER_UTIL_HTTP_LISTENER_H_
#define MCSERVE_SERVER_UTIL_HTTP_LISTENER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace httplib {
class Server;
}

namespace mcserve {

struct HttpListenOptions {
  std::string listen;  // "HOST:PORT" or "[V6HOST]:PORT"; PORT 0 picks a free one
  int max_connections = 256;
  absl::Duration read_timeout = absl::Seconds(5);
};

// INVALID_ARGUMENT unless `listen` is HOST:PORT ([HOST]:PORT for IPv6).
absl::Status ParseListenAddress(const std::string& listen, std::string* host, int* port);

// Sets `server`'s connection threads and timeouts and binds it; returns the
// bound port. INVALID_ARGUMENT for bad options, UNAVAILABLE when the address
// cannot be bound. Serve with server.listen_after_bind() afterwards.
absl::StatusOr<int> BindHttpServer(httplib::Server& server, const HttpListenOptions& options);

}  // namespace mcserve

#endif  // MCSERVE_SERVER_UTIL_HTTP_LISTENER_H_
