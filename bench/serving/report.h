// What mcserve-bench-serving measured, summed up as vLLM's benchmark_serving
// does: throughput, then time to first token (TTFT), time per output token
// after the first (TPOT), inter-token latency (ITL: the gaps between
// streamed messages, spread over their tokens) and end-to-end latency, each
// as mean, p50, p90 and p99 over the requests that succeeded, and the
// failures counted by gRPC status.
#ifndef MCSERVE_BENCH_SERVING_REPORT_H_
#define MCSERVE_BENCH_SERVING_REPORT_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mcserve::bench {

// One request (a one-shot request, or one turn of a session).
struct RequestRecord {
  bool session = false;
  double sent_s = 0;  // after the run's start
  double ttft_s = -1;
  double e2e_s = 0;
  int32_t prompt_tokens = 0;
  int32_t output_tokens = 0;
  std::vector<double> itl_s;  // one per output token after the first
  std::string status = "OK";  // gRPC status code name
};

struct Distribution {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
  int64_t count = 0;
};
// Percentiles interpolated linearly between order statistics (numpy's
// default). Empty: all zero.
Distribution Summarize(std::vector<double> values);

struct Report {
  double wall_s = 0;
  int64_t requests = 0, succeeded = 0;
  int64_t output_tokens = 0, prompt_tokens = 0;
  double requests_per_s = 0, output_tokens_per_s = 0;
  Distribution ttft_ms, tpot_ms, itl_ms, e2e_ms;
  std::map<std::string, int64_t> failures;  // by status
};
Report MakeReport(const std::vector<RequestRecord>& records, double wall_s);

// Requests by when they were sent, `window_s` at a time: count, TTFT p50
// and p99, ITL p99 and failures per window (does the latency hold over a
// long run?). JSON: one object per window.
std::string WindowTable(const std::vector<RequestRecord>& records, double window_s);
nlohmann::json WindowJson(const std::vector<RequestRecord>& records, double window_s);

// The closing table, as text.
std::string ReportTable(const Report& r);
// The same workload in-process and over gRPC: each latency, the difference,
// and the difference's share of the gRPC figure (what the gRPC layer adds).
std::string OverheadTable(const Report& in_process, const Report& grpc);
// End-to-end time per output token (ms): all requests' E2E over all their
// output tokens.
double E2ePerTokenMs(const Report& r);
nlohmann::json ReportJson(const Report& r);

}  // namespace mcserve::bench

#endif  // MCSERVE_BENCH_SERVING_REPORT_H_
