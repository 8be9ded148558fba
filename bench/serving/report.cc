#include "bench/serving/report.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mcserve::bench {

Distribution Summarize(std::vector<double> v) {
  Distribution d;
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  auto pct = [&v](double p) {
    const double x = p / 100.0 * static_cast<double>(v.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(x));
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (x - static_cast<double>(lo));
  };
  d.count = static_cast<int64_t>(v.size());
  d.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  d.p50 = pct(50);
  d.p90 = pct(90);
  d.p99 = pct(99);
  return d;
}

Report MakeReport(const std::vector<RequestRecord>& records, double wall_s) {
  Report r;
  r.wall_s = wall_s;
  std::vector<double> ttft, tpot, itl, e2e;
  for (const RequestRecord& q : records) {
    ++r.requests;
    if (q.status != "OK") {
      ++r.failures[q.status];
      continue;
    }
    ++r.succeeded;
    r.output_tokens += q.output_tokens;
    r.prompt_tokens += q.prompt_tokens;
    if (q.ttft_s >= 0) ttft.push_back(q.ttft_s * 1e3);
    if (q.output_tokens > 1 && q.ttft_s >= 0) {
      tpot.push_back((q.e2e_s - q.ttft_s) * 1e3 / (q.output_tokens - 1));
    }
    for (double g : q.itl_s) itl.push_back(g * 1e3);
    e2e.push_back(q.e2e_s * 1e3);
  }
  r.requests_per_s = wall_s > 0 ? static_cast<double>(r.succeeded) / wall_s : 0;
  r.output_tokens_per_s = wall_s > 0 ? static_cast<double>(r.output_tokens) / wall_s : 0;
  r.ttft_ms = Summarize(std::move(ttft));
  r.tpot_ms = Summarize(std::move(tpot));
  r.itl_ms = Summarize(std::move(itl));
  r.e2e_ms = Summarize(std::move(e2e));
  return r;
}

namespace {

std::vector<Report> Windows(const std::vector<RequestRecord>& records, double window_s) {
  std::vector<std::vector<RequestRecord>> by;
  for (const RequestRecord& r : records) {
    const size_t w = static_cast<size_t>(std::max(0.0, r.sent_s) / window_s);
    if (by.size() <= w) by.resize(w + 1);
    by[w].push_back(r);
  }
  std::vector<Report> out;
  for (const auto& rs : by) out.push_back(MakeReport(rs, window_s));
  return out;
}

int64_t Failed(const Report& r) {
  int64_t n = 0;
  for (const auto& [status, count] : r.failures) n += count;
  return n;
}

}  // namespace

std::string WindowTable(const std::vector<RequestRecord>& records, double window_s) {
  std::string out = absl::StrFormat("%-12s %9s %12s %12s %12s %8s\n", "sent (s)", "requests",
                                    "TTFT p50", "TTFT p99", "ITL p99", "failed");
  const std::vector<Report> windows = Windows(records, window_s);
  for (size_t w = 0; w < windows.size(); ++w) {
    const Report& r = windows[w];
    absl::StrAppendFormat(&out, "%5.0f-%-6.0f %9d %12.2f %12.2f %12.2f %8d\n", w * window_s,
                          (w + 1) * window_s, r.requests, r.ttft_ms.p50, r.ttft_ms.p99,
                          r.itl_ms.p99, Failed(r));
  }
  return out;
}

nlohmann::json WindowJson(const std::vector<RequestRecord>& records, double window_s) {
  nlohmann::json out = nlohmann::json::array();
  const std::vector<Report> windows = Windows(records, window_s);
  for (size_t w = 0; w < windows.size(); ++w) {
    const Report& r = windows[w];
    out.push_back({{"from_s", w * window_s},
                   {"requests", r.requests},
                   {"ttft_p50_ms", r.ttft_ms.p50},
                   {"ttft_p99_ms", r.ttft_ms.p99},
                   {"itl_p99_ms", r.itl_ms.p99},
                   {"failed", Failed(r)}});
  }
  return out;
}

std::string ReportTable(const Report& r) {
  std::string out;
  absl::StrAppendFormat(&out, "%-28s %10d\n", "requests", r.requests);
  absl::StrAppendFormat(&out, "%-28s %10d\n", "succeeded", r.succeeded);
  absl::StrAppendFormat(&out, "%-28s %10.2f\n", "wall time (s)", r.wall_s);
  absl::StrAppendFormat(&out, "%-28s %10.2f\n", "requests/s", r.requests_per_s);
  absl::StrAppendFormat(&out, "%-28s %10.1f\n", "output tokens/s", r.output_tokens_per_s);
  absl::StrAppendFormat(&out, "%-28s %10d\n", "prompt tokens", r.prompt_tokens);
  absl::StrAppendFormat(&out, "%-28s %10d\n", "output tokens", r.output_tokens);
  absl::StrAppendFormat(&out, "\n%-10s %10s %10s %10s %10s\n", "(ms)", "mean", "p50", "p90", "p99");
  for (const auto& [name, d] : {std::pair<const char*, const Distribution&>{"TTFT", r.ttft_ms},
                                {"TPOT", r.tpot_ms},
                                {"ITL", r.itl_ms},
                                {"E2E", r.e2e_ms}}) {
    absl::StrAppendFormat(&out, "%-10s %10.2f %10.2f %10.2f %10.2f\n", name, d.mean, d.p50, d.p90,
                          d.p99);
  }
  out += "\nfailures:";
  if (r.failures.empty()) out += " none";
  for (const auto& [status, n] : r.failures) absl::StrAppend(&out, " ", status, "=", n);
  out += "\n";
  return out;
}

double E2ePerTokenMs(const Report& r) {
  return r.output_tokens > 0 ? r.e2e_ms.mean * static_cast<double>(r.succeeded) /
                                   static_cast<double>(r.output_tokens)
                             : 0;
}

std::string OverheadTable(const Report& in_process, const Report& grpc) {
  std::string out = absl::StrFormat("%-22s %12s %12s %12s %10s\n", "(ms)", "in-process", "gRPC",
                                    "difference", "share");
  auto row = [&out](const char* name, double a, double b) {
    absl::StrAppendFormat(&out, "%-22s %12.3f %12.3f %12.3f %9.1f%%\n", name, a, b, b - a,
                          b > 0 ? 100.0 * (b - a) / b : 0.0);
  };
  row("TTFT mean", in_process.ttft_ms.mean, grpc.ttft_ms.mean);
  row("TTFT p50", in_process.ttft_ms.p50, grpc.ttft_ms.p50);
  row("TTFT p99", in_process.ttft_ms.p99, grpc.ttft_ms.p99);
  row("ITL mean", in_process.itl_ms.mean, grpc.itl_ms.mean);
  row("ITL p99", in_process.itl_ms.p99, grpc.itl_ms.p99);
  row("E2E mean", in_process.e2e_ms.mean, grpc.e2e_ms.mean);
  row("E2E per output token", E2ePerTokenMs(in_process), E2ePerTokenMs(grpc));
  absl::StrAppendFormat(&out, "%-22s %12.1f %12.1f\n", "output tokens/s",
                        in_process.output_tokens_per_s, grpc.output_tokens_per_s);
  return out;
}

nlohmann::json ReportJson(const Report& r) {
  auto dist = [](const Distribution& d) {
    return nlohmann::json{
        {"mean", d.mean}, {"p50", d.p50}, {"p90", d.p90}, {"p99", d.p99}, {"count", d.count}};
  };
  return nlohmann::json{{"wall_s", r.wall_s},
                        {"requests", r.requests},
                        {"succeeded", r.succeeded},
                        {"requests_per_s", r.requests_per_s},
                        {"output_tokens_per_s", r.output_tokens_per_s},
                        {"prompt_tokens", r.prompt_tokens},
                        {"output_tokens", r.output_tokens},
                        {"ttft_ms", dist(r.ttft_ms)},
                        {"tpot_ms", dist(r.tpot_ms)},
                        {"itl_ms", dist(r.itl_ms)},
                        {"e2e_ms", dist(r.e2e_ms)},
                        {"failures", r.failures}};
}

}  // namespace mcserve::bench
