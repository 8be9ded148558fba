// A gRPC server interceptor that counts every finished RPC by method and
// status code (mcserve_grpc_requests_total), whatever the handler.
#ifndef MCSERVE_SERVER_METRICS_RPC_INTERCEPTOR_H_
#define MCSERVE_SERVER_METRICS_RPC_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include "server/metrics/metrics.h"

namespace mcserve::metrics {

class RpcMetricsFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsFactory(Metrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics* const metrics_;
};

// "/mcserve.v1.Generation/Generate" -> "Generate"
absl::string_view MethodShortName(absl::string_view full);
// grpc::StatusCode -> "OK", "INVALID_ARGUMENT", ...
absl::string_view StatusCodeName(int code);

}  // namespace mcserve::metrics

#endif  // MCSERVE_SERVER_METRICS_RPC_INTERCEPTOR_H_
