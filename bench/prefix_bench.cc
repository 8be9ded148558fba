// mcserve-prefix-bench: time to first token of one-shot requests that share
// a long prefix, with the prefix cache and without it, in one run (the
// in-process engine on the model's device). For each shared length, a
// first request publishes the prefix; then `--requests` requests that add a
// different tail each are timed on an engine with the cache and on one
// without. Prints a markdown table for docs/benchmarks.md.
//
//   mcserve-prefix-bench [--model=DIR] [--prefix=512,2048,8192] [--requests=5]
//                        [--threads=1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/int_list.h"
#include "server/util/flags_help.h"
#include "server/util/log.h"
#include "tests/support/engine_harness.h"

#ifndef MCSERVE_DEFAULT_MODEL_DIR
#define MCSERVE_DEFAULT_MODEL_DIR "models/default"
#endif

ABSL_FLAG(std::string, model, MCSERVE_DEFAULT_MODEL_DIR, "Model directory");
ABSL_FLAG(std::string, prefix, "512,2048,8192", "Shared prefix lengths, in tokens");
ABSL_FLAG(int32_t, requests, 5, "Timed requests per length and engine");
ABSL_FLAG(int32_t, threads, 1, "Intra-op threads (0: LibTorch default)");

namespace mcserve::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

// `prefix` shared tokens (a different prefix for each `prefix_seed`), then
// a tail of 16 that differs by `tail_seed`.
std::vector<int32_t> Prompt(int prefix, int tail_seed, int prefix_seed = 0) {
  std::vector<int32_t> t;
  for (int i = 0; i < prefix; ++i) t.push_back(32 + (i * 37 + prefix_seed * 11) % 90);
  for (int i = 0; i < 16; ++i) t.push_back(97 + (tail_seed * 5 + i) % 26);
  return t;
}

// Median time to first token (one generated token: prefill plus one decode
// step) over the timed requests, in ms; the first request is untimed. With
// `fresh`, every request has a prefix of its own (all misses).
double MedianTtftMs(testing::EngineHarness& h, int prefix, int requests, bool fresh = false) {
  h.Generate("", Prompt(prefix, 0), 1);
  std::vector<double> ms;
  for (int r = 1; r <= requests; ++r) {
    const auto t0 = SteadyClock::now();
    const testing::EngineResult res = h.Generate("", Prompt(prefix, r, fresh ? r : 0), 1);
    ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
    if (!res.status.ok())
      std::fprintf(stderr, "request failed: %s\n", res.status.ToString().c_str());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

engine::EngineOptions Options(bool cache) {
  engine::EngineOptions o;
  o.max_sessions = 4;
  o.intra_op_threads = absl::GetFlag(FLAGS_threads);
  o.prefix_cache_bytes = cache ? (256ll << 20) : 0;
  return o;
}

void Main() {
  const std::string dir = absl::GetFlag(FLAGS_model);
  const int requests = std::max(1, absl::GetFlag(FLAGS_requests));
  std::printf(
      "| shared prefix | TTFT, cache off | TTFT, cache on (hit) | off / hit | TTFT, cache on "
      "(miss) | miss / off |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  for (int64_t n : IntList(absl::GetFlag(FLAGS_prefix))) {
    const int prefix = static_cast<int>(n);
    testing::EngineHarness plain(dir, Options(false));
    testing::EngineHarness cached(dir, Options(true));
    const double off = MedianTtftMs(plain, prefix, requests);
    const double on = MedianTtftMs(cached, prefix, requests);
    const double miss = MedianTtftMs(cached, prefix, requests, /*fresh=*/true);
    std::printf("| %d | %.1f ms | %.1f ms | %.1fx | %.1f ms | %.2f |\n", prefix, off, on, off / on,
                miss, miss / off);
    std::fflush(stdout);
  }
}

}  // namespace
}  // namespace mcserve::bench

int main(int argc, char** argv) {
  mcserve::SetFlagsHelp("mcserve-prefix-bench [--model=DIR] [--prefix=512,2048,8192 --requests=5]",
                        {"bench/prefix_bench.cc"});
  absl::ParseCommandLine(argc, argv);
  mcserve::SetLogLevel(mcserve::LogLevel::kWarning);
  mcserve::bench::Main();
  return 0;
}
