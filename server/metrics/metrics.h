// Prometheus metrics of the server (names mcserve_*, bounded labels only:
// never a session id, request id or prompt). One Metrics object is created
// at start, exposed by the exposer, and handed to the components that
// record. Thread-safe (prometheus-cpp metrics are).
//
// Latency histograms use vLLM's bucket layouts, so dashboards and habits
// carry over: TTFT, inter-token latency, end-to-end and queue time.
#ifndef MCSERVE_SERVER_METRICS_METRICS_H_
#define MCSERVE_SERVER_METRICS_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace mcserve::metrics {

// One request's figures at its end.
struct RequestRecord {
  absl::string_view finish_reason;  // "length", "stop", ..., or "error"
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  double queue_s = -1;  // < 0: never left the queue
  double ttft_s = -1;   // < 0: no token
  double e2e_s = 0;
};

// The engine's state, sampled after every step.
struct EngineGauges {
  int64_t running = 0, waiting = 0, sessions = 0, lossy_sessions = 0;
  int64_t checkpoint_slots_used = 0, host_checkpoint_slots_used = 0;
  int64_t device_bytes = 0, host_bytes = 0;                    // in use
  int64_t device_capacity_bytes = 0, host_capacity_bytes = 0;  // allocated
  // Prefix cache: entries and bytes by the tier of their checkpoint.
  int64_t prefix_entries_device = 0, prefix_entries_host = 0;
  int64_t prefix_bytes_device = 0, prefix_bytes_host = 0;
  // Totals since start (exported as counters).
  int64_t offloads = 0, fetches = 0, drops = 0, merges = 0;
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;
};

class Metrics {
 public:
  Metrics();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  void RequestFinished(const RequestRecord& r);
  // Time between two consecutive tokens of one request.
  void InterToken(double seconds);
  // One engine phase ("prefill" or "decode") over `batch` sessions.
  void Step(absl::string_view phase, int64_t batch, double seconds);
  // Called by one thread (the engine thread).
  void Publish(const EngineGauges& g);
  // A finished RPC: method short name (e.g. "Generate"), status code name.
  void RpcFinished(absl::string_view method, absl::string_view code);
  // A finished HTTP request of the OpenAI front: route, HTTP status code.
  void HttpFinished(absl::string_view path, int status);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Histogram>& itl_;
  prometheus::Family<prometheus::Histogram>& e2e_;
  prometheus::Family<prometheus::Histogram>& queue_;
  prometheus::Family<prometheus::Histogram>& step_;
  prometheus::Family<prometheus::Counter>& prompt_tokens_;
  prometheus::Family<prometheus::Counter>& generation_tokens_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Gauge>& running_;
  prometheus::Family<prometheus::Gauge>& waiting_;
  prometheus::Family<prometheus::Gauge>& sessions_;
  prometheus::Family<prometheus::Gauge>& lossy_;
  prometheus::Family<prometheus::Gauge>& checkpoints_;
  prometheus::Family<prometheus::Gauge>& cache_bytes_;
  prometheus::Family<prometheus::Gauge>& capacity_bytes_;
  prometheus::Family<prometheus::Counter>& evictions_;
  prometheus::Family<prometheus::Counter>& fetches_;
  prometheus::Family<prometheus::Counter>& prefix_queries_;
  prometheus::Family<prometheus::Counter>& prefix_hits_;
  prometheus::Family<prometheus::Gauge>& prefix_entries_;
  prometheus::Family<prometheus::Gauge>& prefix_bytes_;
  EngineGauges last_;  // totals already added to the counters
  prometheus::Histogram& ttft_h_;
  prometheus::Histogram& itl_h_;
  prometheus::Histogram& e2e_h_;
  prometheus::Histogram& queue_h_;
};

// Bounded label for a batch size: "1", "2", "3-4", "5-8", ..., "257+".
std::string BatchLabel(int64_t batch);

}  // namespace mcserve::metrics

#endif  // MCSERVE_SERVER_METRICS_METRICS_H_
