// Limits and keepalive policy of the gRPC server's HTTP/2 connections, the
// set Triton exposes as flags: concurrent streams per connection,
// keepalive pings and the policing of clients that ping too often, and
// connection age (so that after a scale-up long-lived clients reconnect and
// spread over the new pods). Defaults are gRPC's own.
#ifndef MCSERVE_SERVER_RPC_CONNECTION_OPTIONS_H_
#define MCSERVE_SERVER_RPC_CONNECTION_OPTIONS_H_

#include <grpcpp/server_builder.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace mcserve::rpc {

struct ConnectionOptions {
  int32_t max_concurrent_streams = 0;  // per connection; 0: unlimited (gRPC's default)
  // Server-initiated keepalive pings: every keepalive_time of inactivity,
  // the connection closed if unanswered within keepalive_timeout.
  absl::Duration keepalive_time = absl::Hours(2);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  bool keepalive_permit_without_calls = false;  // accept client pings with no call open
  // A client ping sooner than this after the last (with no data between) is
  // a strike; after max_ping_strikes the server sends GOAWAY
  // ("too_many_pings"). 0 strikes: unlimited.
  absl::Duration min_recv_ping_interval = absl::Minutes(5);
  int32_t max_ping_strikes = 2;
  // GOAWAY after this age, in-flight calls finishing within the grace.
  absl::Duration max_connection_age = absl::InfiniteDuration();
  absl::Duration max_connection_age_grace = absl::InfiniteDuration();
  absl::Duration max_connection_idle = absl::InfiniteDuration();

  // INVALID_ARGUMENT naming the flag (--grpc_<field>) of a value out of range.
  absl::Status Validate() const;
  // Sets the channel arguments of every field on `builder`.
  void Apply(grpc::ServerBuilder& builder) const;
};

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_CONNECTION_OPTIONS_H_
