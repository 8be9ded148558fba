#include "server/rpc/connection_options.h"

#include <grpc/grpc.h>

#include <algorithm>
#include <climits>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace mcserve::rpc {
namespace {

// Milliseconds as gRPC's int channel arguments take them (infinite: INT_MAX).
int Ms(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return INT_MAX;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT_MAX));
}

absl::Status AtLeast(absl::string_view flag, absl::Duration d, absl::Duration min) {
  if (d < min) {
    return absl::InvalidArgumentError(absl::StrCat("--grpc_", flag, " must be at least ",
                                                   absl::FormatDuration(min), ", got ",
                                                   absl::FormatDuration(d)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ConnectionOptions::Validate() const {
  if (max_concurrent_streams < 0) {
    return absl::InvalidArgumentError("--grpc_max_concurrent_streams must be >= 0");
  }
  if (max_ping_strikes < 0) {
    return absl::InvalidArgumentError("--grpc_http2_max_ping_strikes must be >= 0");
  }
  for (auto [flag, d, min] : {
           std::tuple{"keepalive_time", keepalive_time, absl::Milliseconds(10)},
           std::tuple{"keepalive_timeout", keepalive_timeout, absl::Milliseconds(1)},
           std::tuple{"http2_min_recv_ping_interval", min_recv_ping_interval, absl::ZeroDuration()},
           std::tuple{"max_connection_age", max_connection_age, absl::Milliseconds(100)},
           std::tuple{"max_connection_age_grace", max_connection_age_grace, absl::ZeroDuration()},
           std::tuple{"max_connection_idle", max_connection_idle, absl::Milliseconds(100)},
       }) {
    if (absl::Status s = AtLeast(flag, d, min); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void ConnectionOptions::Apply(grpc::ServerBuilder& b) const {
  if (max_concurrent_streams > 0) {
    b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, max_concurrent_streams);
  }
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Ms(keepalive_time));
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Ms(keepalive_timeout));
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                       keepalive_permit_without_calls ? 1 : 0);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                       Ms(min_recv_ping_interval));
  b.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, max_ping_strikes);
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, Ms(max_connection_age));
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, Ms(max_connection_age_grace));
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, Ms(max_connection_idle));
}

}  // namespace mcserve::rpc
