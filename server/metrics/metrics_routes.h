// What /metrics answers, apart from how it listens (http_exposer.h): GET
// /metrics returns the registry in the text exposition format (0.0.4), behind
// "Authorization: Bearer <token>" when a token is set (else 401); other paths
// are 404, other methods 405. Separate so that the fuzz target
// (fuzz/metrics_http_fuzz.cc) drives exactly these routes.
#ifndef MCSERVE_SERVER_METRICS_METRICS_ROUTES_H_
#define MCSERVE_SERVER_METRICS_METRICS_ROUTES_H_

#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace httplib {
class Server;
}

namespace mcserve::metrics {

// Registers the routes on `server`. `token` empty: no authentication.
void InstallMetricsRoutes(httplib::Server& server, std::shared_ptr<prometheus::Registry> registry,
                          std::string token);

// Whether an Authorization header value carries exactly `token` as a bearer
// token, compared in time that depends only on the lengths.
bool BearerMatches(absl::string_view authorization, absl::string_view token);

}  // namespace mcserve::metrics

#endif  // MCSERVE_SERVER_METRICS_METRICS_ROUTES_H_
