// Reading a test server's Prometheus endpoint.
#ifndef MCSERVE_TESTS_SUPPORT_METRICS_SCRAPE_H_
#define MCSERVE_TESTS_SUPPORT_METRICS_SCRAPE_H_

#include <string>

namespace mcserve::testing {

// GET /metrics from 127.0.0.1:`port` over a plain socket: the whole HTTP
// response, headers included ("" when nothing answers).
std::string ScrapeMetrics(int port);

// The port a server wrote to its --metrics_port_file (0 if unreadable).
int ReadPortFile(const std::string& path);

// The value of the sample whose line starts with `series` (name and labels,
// exactly as exposed), or -1 when there is none.
double SampleValue(const std::string& exposition, const std::string& series);

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_SUPPORT_METRICS_SCRAPE_H_
