#include "server/metrics/metrics_routes.h"

#include <httplib.h>
#include <prometheus/text_serializer.h>

#include <utility>

#include "absl/strings/match.h"

namespace mcserve::metrics {
namespace {

// Equal strings, in time that depends only on their lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < a.size(); ++i) {
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(a[i]) ^ y;
  }
  return diff == 0;
}

}  // namespace

bool BearerMatches(absl::string_view authorization, absl::string_view token) {
  constexpr absl::string_view kScheme = "Bearer ";
  if (!absl::StartsWith(authorization, kScheme)) return false;
  return ConstantTimeEquals(authorization.substr(kScheme.size()), token);
}

void InstallMetricsRoutes(httplib::Server& server, std::shared_ptr<prometheus::Registry> registry,
                          std::string token) {
  server.Get("/metrics", [registry, token](const httplib::Request& req, httplib::Response& res) {
    if (!token.empty()) {
      if (!BearerMatches(req.get_header_value("Authorization"), token)) {
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
  server.Post(".*", not_allowed);
  server.Put(".*", not_allowed);
  server.Delete(".*", not_allowed);
  server.Patch(".*", not_allowed);
  server.Get(".*", [](const httplib::Request&, httplib::Response& res) {
    res.status = 404;
    res.set_content("metrics are at /metrics\n", "text/plain");
  });
}

}  // namespace mcserve::metrics
