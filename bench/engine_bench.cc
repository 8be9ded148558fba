// mcserve-engine-bench: decode throughput of the whole engine (scheduler,
// checkpoint pool, batched model step, sampling, streaming to channels)
// against the number of concurrent sessions and the checkpoints each holds,
// on the model's device; plus the cost of eviction (a device tier too small
// for the load, the rest offloaded to the host tier) and the scheduler's
// planning time per step. Prints markdown tables for docs/benchmarks.md.
//
//   mcserve-engine-bench [--model=DIR] [--sessions=1,4,16,64,256]
//                        [--checkpoints=0,4,16] [--gen_tokens=32] [--threads=0]
#include <chrono>
#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/int_list.h"
#include "server/engine/scheduler.h"
#include "server/model/cache_tensors.h"
#include "server/util/flags_help.h"
#include "server/util/log.h"
#include "tests/support/engine_harness.h"

#ifndef MCSERVE_DEFAULT_MODEL_DIR
#define MCSERVE_DEFAULT_MODEL_DIR "models/default"
#endif

ABSL_FLAG(std::string, model, MCSERVE_DEFAULT_MODEL_DIR, "Model directory");
ABSL_FLAG(std::string, sessions, "1,4,16,64,256", "Concurrent sessions");
ABSL_FLAG(std::string, checkpoints, "0,4,16", "Checkpoints each session holds when timed");
ABSL_FLAG(int32_t, gen_tokens, 32, "Tokens each session generates in the timed round");
ABSL_FLAG(int32_t, threads, 0, "Intra-op threads (0: LibTorch default)");

namespace mcserve::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::vector<int32_t> Tokens(int n, int seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (seed * 131 + i * 17) % 256;
  return t;
}

struct Load {
  int sessions = 1;
  int ckpts = 0;         // per session, before the timed round
  int device_slots = 0;  // 0: room for everything
  double tokens_per_s = 0;
  double step_ms = 0;  // wall time per generated token of the round
  int64_t fetched = 0;
};

// Fills `sessions` sessions with `ckpts` checkpoints each, then times one
// round in which every session generates gen_tokens tokens concurrently.
Load Run(const model::ModelConfig& c, Load load) {
  const int gen = absl::GetFlag(FLAGS_gen_tokens);
  const int reps = 3;  // timed rounds; the best is reported
  const int64_t per_session = load.ckpts + reps * (gen / c.segment_length + 1) + 1;
  const int64_t bytes = model::CheckpointBytes(c, model::CkptDtype::kFloat32);
  engine::EngineOptions o;
  o.max_running = load.sessions;
  o.max_sessions = load.sessions;
  o.prefill_tokens_per_step = 4096;
  o.intra_op_threads = absl::GetFlag(FLAGS_threads);
  const int64_t all = per_session * load.sessions;
  // A session's checkpoints must fit on the device at once.
  const int64_t device =
      load.device_slots > 0 ? std::max<int64_t>(load.device_slots, per_session) : all;
  o.checkpoint_pool_bytes = device * bytes;
  o.host_pool_bytes = all * bytes;
  testing::EngineHarness h(absl::GetFlag(FLAGS_model), o);
  std::vector<testing::PendingRequest> fill;
  for (int i = 0; i < load.sessions; ++i) {
    const std::string id = absl::StrCat("s", i);
    (void)h.CreateSession(id);
    fill.push_back(h.Start(id, Tokens(load.ckpts * c.segment_length, i), 0));
  }
  for (auto& f : fill) {
    const testing::EngineResult r = f.Wait();
    if (!r.status.ok()) std::fprintf(stderr, "fill failed: %s\n", r.status.ToString().c_str());
  }
  const int64_t fetched_before = h.SettledStatus().evictions.fetches;
  double best = 1e30;
  int64_t tokens = 0;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = SteadyClock::now();
    std::vector<testing::PendingRequest> round;
    for (int i = 0; i < load.sessions; ++i) {
      round.push_back(h.Start(absl::StrCat("s", i), {}, gen));
    }
    tokens = 0;
    for (auto& r : round) {
      const testing::EngineResult res = r.Wait();
      if (!res.status.ok())
        std::fprintf(stderr, "round failed: %s\n", res.status.ToString().c_str());
      tokens += static_cast<int64_t>(res.tokens.size());
    }
    best = std::min(best, std::chrono::duration<double>(SteadyClock::now() - t0).count());
  }
  load.tokens_per_s = static_cast<double>(tokens) / best;
  load.step_ms = 1e3 * best / gen;
  load.fetched = (h.SettledStatus().evictions.fetches - fetched_before) / reps;
  return load;
}

// Mean microseconds of Scheduler::Schedule + Update with `n` decoding.
double SchedulerMicros(int n) {
  engine::Scheduler s({n, 512});
  for (int i = 1; i <= n; ++i) s.Enqueue(static_cast<engine::RequestId>(i), 0);
  const int iters = 2000;
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < iters; ++i) s.Update(s.Schedule());
  return 1e6 * std::chrono::duration<double>(SteadyClock::now() - t0).count() / iters;
}

int Main() {
  SetLogLevel(LogLevel::kWarning);  // no line per request
  auto c = model::ModelConfig::Load(absl::GetFlag(FLAGS_model) + "/config.json");
  if (!c.ok()) {
    std::fprintf(stderr, "%s\n", c.status().ToString().c_str());
    return 1;
  }
  const std::vector<int64_t> session_flag = IntList(absl::GetFlag(FLAGS_sessions));
  const std::vector<int64_t> ckpt_flag = IntList(absl::GetFlag(FLAGS_checkpoints));
  const std::vector<int> sessions(session_flag.begin(), session_flag.end());
  const std::vector<int> ckpts(ckpt_flag.begin(), ckpt_flag.end());
  std::printf("model %s: D=%d L=%d H=%d d=%d C=%d aggregation=%s; %d tokens per session\n\n",
              absl::GetFlag(FLAGS_model).c_str(), c->d_model, c->n_layers, c->n_heads, c->head_dim,
              c->segment_length, std::string(model::AggregationName(c->aggregation)).c_str(),
              absl::GetFlag(FLAGS_gen_tokens));

  Run(*c, {4, ckpts.front()});  // warm-up: thread pools, allocator, caches
  std::printf(
      "Decode tokens/s (all sessions together, best of 3 rounds), by checkpoints per "
      "session\n\n");
  std::printf("| sessions |");
  for (int k : ckpts) std::printf(" %d ckpts |", k);
  std::printf(" ratio %d/%d ckpts |\n|---|", ckpts.back(), ckpts.front());
  for (size_t i = 0; i <= ckpts.size(); ++i) std::printf("---|");
  std::printf("\n");
  std::vector<double> step_ms(sessions.size());
  for (size_t si = 0; si < sessions.size(); ++si) {
    std::printf("| %d |", sessions[si]);
    std::vector<double> tps;
    for (int k : ckpts) {
      const Load l = Run(*c, {sessions[si], k});
      tps.push_back(l.tokens_per_s);
      if (k == ckpts.front()) step_ms[si] = l.step_ms;
      std::printf(" %.0f |", l.tokens_per_s);
      std::fflush(stdout);
    }
    std::printf(" %.2f |\n", tps.back() / tps.front());
  }

  std::printf("\nEviction: %d checkpoints per session, device tier for a quarter of them\n\n",
              ckpts.back());
  std::printf("| sessions | roomy tokens/s | tiny tokens/s | ratio | fetches per round |\n");
  std::printf("|---|---|---|---|---|\n");
  for (int n : sessions) {
    if (n < 4) continue;
    const Load roomy = Run(*c, {n, ckpts.back()});
    const int device = n * ckpts.back() / 4;
    const Load tiny = Run(*c, {n, ckpts.back(), device});
    std::printf("| %d | %.0f | %.0f | %.2f | %lld |\n", n, roomy.tokens_per_s, tiny.tokens_per_s,
                tiny.tokens_per_s / roomy.tokens_per_s, static_cast<long long>(tiny.fetched));
    std::fflush(stdout);
  }

  std::printf("\nScheduler planning per step (Schedule + Update) against the step itself\n\n");
  std::printf("| sessions | planning us | step ms (%d ckpts) | fraction |\n|---|---|---|---|\n",
              ckpts.front());
  for (size_t si = 0; si < sessions.size(); ++si) {
    const double us = SchedulerMicros(sessions[si]);
    std::printf("| %d | %.2f | %.3f | %.4f |\n", sessions[si], us, step_ms[si],
                us / (1e3 * step_ms[si]));
  }
  return 0;
}

}  // namespace
}  // namespace mcserve::bench

int main(int argc, char** argv) {
  mcserve::SetFlagsHelp(
      "mcserve-engine-bench [--model=DIR] [--sessions=1,4,16 --checkpoints=0,4 ...]",
      {"bench/engine_bench.cc"});
  absl::ParseCommandLine(argc, argv);
  return mcserve::bench::Main();
}
