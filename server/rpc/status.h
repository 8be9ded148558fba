// absl::Status <-> grpc::Status. The codes are numerically identical.
#ifndef MCSERVE_SERVER_RPC_STATUS_H_
#define MCSERVE_SERVER_RPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace mcserve::rpc {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace mcserve::rpc

#endif  // MCSERVE_SERVER_RPC_STATUS_H_
