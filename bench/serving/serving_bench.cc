// mcserve-bench-serving: a load generator over real gRPC, after vLLM's
// benchmark_serving. Conversations arrive at --request_rate (Poisson or
// evenly spaced; "inf": all at once); a --session_share of them are
// multi-turn sessions (CreateSession, --turns requests with --think_time
// between, DeleteSession), the rest one-shot requests. Prompts are random
// token ids (other than the model's BOS and EOS) of --prompt_tokens, outputs
// exactly --output_tokens (ignore_eos), both drawn uniformly within
// --range_ratio of their means, all from --seed. A progress line on stderr
// while it runs; then the table (report.h) and, with --json, a JSON file.
// --target=in_process runs the workload on an engine inside the bench, built
// from the server's own flags (--model=DIR and the rest, as mcserve takes
// them); --target=both runs it in-process, then over gRPC against --addr
// (a server started with the same flags), and prints what the gRPC layer
// adds per request and per token.
//
//   mcserve-bench-serving --addr=127.0.0.1:50051 --conversations=200
//     --request_rate=4 --session_share=0.5 --turns=3 --json=out.json
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/serving/report.h"
#include "bench/serving/target.h"
#include "bench/serving/workload.h"
#include "server/util/flags_help.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "mcserve's gRPC address");
ABSL_FLAG(std::string, token, "", "Bearer token, if the server wants one");
ABSL_FLAG(int32_t, conversations, 100, "Conversations (one-shot requests or sessions)");
ABSL_FLAG(std::string, request_rate, "inf", "Conversation starts per second, or inf (a burst)");
ABSL_FLAG(std::string, arrivals, "poisson", "poisson or fixed (evenly spaced)");
ABSL_FLAG(double, session_share, 0.0, "Share of conversations that are multi-turn sessions");
ABSL_FLAG(int32_t, turns, 3, "Requests per session");
ABSL_FLAG(absl::Duration, think_time, absl::ZeroDuration(), "Pause between a session's turns");
ABSL_FLAG(int32_t, prompt_tokens, 128, "Mean prompt length, in tokens");
ABSL_FLAG(int32_t, output_tokens, 64, "Mean output length, in tokens");
ABSL_FLAG(double, range_ratio, 0.0, "Lengths uniform within mean * [1 - r, 1 + r]");
ABSL_FLAG(uint64_t, seed, 0, "Seed of the workload (and of sampling)");
ABSL_FLAG(int32_t, max_concurrency, 0, "Most requests in flight (0: no limit)");
ABSL_FLAG(absl::Duration, timeout, absl::InfiniteDuration(), "Deadline of each request");
ABSL_FLAG(std::string, json, "", "Also write the results here");
ABSL_FLAG(bool, progress, true, "Show a progress line on stderr");
ABSL_FLAG(absl::Duration, window, absl::Seconds(60),
          "Runs longer than two windows also print latency per window of send time");
ABSL_FLAG(std::string, target, "grpc",
          "grpc (the server at --addr), in_process (an engine built from the server flags), or "
          "both (in-process first, then gRPC, and the difference)");

ABSL_DECLARE_FLAG(std::string, log_level);  // the server's (server_options.cc)

namespace mcserve::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Requests in flight, at most `limit` (0: any number).
class Slots {
 public:
  explicit Slots(int32_t limit) : limit_(limit) {}
  void Acquire() {
    absl::MutexLock l(&mu_);
    if (limit_ > 0) mu_.Await(absl::Condition(this, &Slots::Free));
    ++used_;
  }
  void Release() {
    absl::MutexLock l(&mu_);
    --used_;
  }

 private:
  bool Free() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return used_ < limit_; }
  absl::Mutex mu_;
  const int32_t limit_;
  int32_t used_ ABSL_GUARDED_BY(mu_) = 0;
};

struct Run {
  Target* target;
  Slots* slots;
  SteadyClock::time_point start;
  uint64_t seed;
  absl::Duration timeout;
  absl::Mutex mu;
  std::vector<RequestRecord> records ABSL_GUARDED_BY(mu);
  std::atomic<int64_t> done{0}, failed{0};

  double Now() const { return std::chrono::duration<double>(SteadyClock::now() - start).count(); }
  void Record(RequestRecord r) {
    if (r.status != "OK") failed.fetch_add(1);
    done.fetch_add(1);
    absl::MutexLock l(&mu);
    records.push_back(std::move(r));
  }
};

RequestRecord Send(Run& run, const Turn& turn, const std::string& session, uint64_t seed) {
  RequestRecord r;
  r.session = !session.empty();
  r.prompt_tokens = static_cast<int32_t>(turn.prompt.size());
  run.slots->Acquire();
  r.sent_s = run.Now();
  double last = -1;
  absl::Status s = run.target->Generate(turn, session, seed, run.timeout, [&](int n) {
    const double t = run.Now();
    if (r.ttft_s < 0) {
      r.ttft_s = t - r.sent_s;
    } else {
      for (int i = 0; i < n; ++i) r.itl_s.push_back((t - last) / n);
    }
    last = t;
    r.output_tokens += n;
  });
  r.e2e_s = run.Now() - r.sent_s;
  run.slots->Release();
  r.status = absl::StatusCodeToString(s.code());
  return r;
}

void Converse(Run& run, const Conversation& c, int64_t index) {
  std::this_thread::sleep_until(run.start + std::chrono::duration_cast<SteadyClock::duration>(
                                                std::chrono::duration<double>(c.start_s)));
  std::string session;
  if (c.session) {
    absl::StatusOr<std::string> made =
        run.target->CreateSession(absl::StrCat("bench-", run.seed, "-", index));
    if (!made.ok()) {
      for (size_t i = 0; i < c.turns.size(); ++i) {
        RequestRecord r;
        r.session = true;
        r.status = absl::StatusCodeToString(made.status().code());
        run.Record(std::move(r));
      }
      return;
    }
    session = *made;
  }
  const absl::Duration think = absl::GetFlag(FLAGS_think_time);
  for (size_t t = 0; t < c.turns.size(); ++t) {
    if (t > 0) absl::SleepFor(think);
    run.Record(Send(run, c.turns[t], session, run.seed + static_cast<uint64_t>(index) * 64 + t));
  }
  if (!session.empty()) run.target->DeleteSession(session);
}

// Runs the workload against `target`; what each request saw.
std::vector<RequestRecord> RunAll(Target& target, const std::vector<Conversation>& work,
                                  uint64_t seed, const std::string& label) {
  int64_t total = 0;
  for (const Conversation& c : work) total += static_cast<int64_t>(c.turns.size());
  Slots slots(absl::GetFlag(FLAGS_max_concurrency));
  Run run;
  run.target = &target;
  run.slots = &slots;
  run.seed = seed;
  run.timeout = absl::GetFlag(FLAGS_timeout);
  run.start = SteadyClock::now();
  std::vector<std::thread> threads;
  threads.reserve(work.size());
  for (size_t i = 0; i < work.size(); ++i) {
    threads.emplace_back(Converse, std::ref(run), std::cref(work[i]), static_cast<int64_t>(i));
  }
  const bool progress = absl::GetFlag(FLAGS_progress);
  while (run.done.load() < total) {
    if (progress) {
      const int64_t done = run.done.load();
      const int width = 30, filled = static_cast<int>(width * done / total);
      std::fprintf(stderr, "\r%s [%s%s] %lld/%lld requests, %lld failed, %.1f s", label.c_str(),
                   std::string(filled, '=').c_str(), std::string(width - filled, ' ').c_str(),
                   static_cast<long long>(done), static_cast<long long>(total),
                   static_cast<long long>(run.failed.load()), run.Now());
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  for (std::thread& t : threads) t.join();
  if (progress) std::fprintf(stderr, "\n");
  absl::MutexLock l(&run.mu);
  return run.records;
}

double Wall(const std::vector<RequestRecord>& records) {
  double wall = 0;  // from the start to the last request's end
  for (const RequestRecord& r : records) wall = std::max(wall, r.sent_s + r.e2e_s);
  return wall;
}

int Main() {
  WorkloadOptions w;
  w.conversations = absl::GetFlag(FLAGS_conversations);
  const std::string rate = absl::GetFlag(FLAGS_request_rate);
  if (rate != "inf" && !absl::SimpleAtod(rate, &w.rate)) {
    std::cerr << "--request_rate: '" << rate << "' is not a number or inf\n";
    return 2;
  }
  const std::string arrivals = absl::GetFlag(FLAGS_arrivals);
  if (arrivals != "poisson" && arrivals != "fixed") {
    std::cerr << "--arrivals must be poisson or fixed\n";
    return 2;
  }
  w.poisson = arrivals == "poisson";
  w.session_share = absl::GetFlag(FLAGS_session_share);
  w.turns = absl::GetFlag(FLAGS_turns);
  w.think_s = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_think_time));
  w.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
  w.output_tokens = absl::GetFlag(FLAGS_output_tokens);
  w.range_ratio = absl::GetFlag(FLAGS_range_ratio);
  w.seed = absl::GetFlag(FLAGS_seed);

  const std::string which = absl::GetFlag(FLAGS_target);
  if (which != "grpc" && which != "in_process" && which != "both") {
    std::cerr << "--target must be grpc, in_process or both\n";
    return 2;
  }
  if (which == "both") {
    // The server must be up and idle before the in-process run, not still
    // starting beside it.
    absl::StatusOr<std::pair<int32_t, int32_t>> up =
        GrpcTarget(absl::GetFlag(FLAGS_addr), absl::GetFlag(FLAGS_token))->PromptIds();
    if (!up.ok()) {
      std::cerr << "mcserve-bench-serving: " << absl::GetFlag(FLAGS_addr) << ": " << up.status()
                << "\n";
      return 1;
    }
  }
  // The in-process engine first (and gone before the gRPC run).
  std::vector<std::pair<std::string, Report>> reports;
  std::map<std::string, std::vector<RequestRecord>> windows;
  const double window_s = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_window));
  for (const std::string name : {"in_process", "grpc"}) {
    if (which != "both" && which != name) continue;
    std::unique_ptr<Target> target;
    if (name == "grpc") {
      target = GrpcTarget(absl::GetFlag(FLAGS_addr), absl::GetFlag(FLAGS_token));
    } else {
      absl::StatusOr<std::unique_ptr<Target>> t = InProcessTarget();
      if (!t.ok()) {
        std::cerr << "mcserve-bench-serving: in-process engine: " << t.status() << "\n";
        return 1;
      }
      target = *std::move(t);
    }
    absl::StatusOr<std::pair<int32_t, int32_t>> ids = target->PromptIds();
    if (!ids.ok()) {
      std::cerr << "mcserve-bench-serving: " << name << ": " << ids.status() << "\n";
      return 1;
    }
    std::tie(w.token_lo, w.token_hi) = *ids;
    absl::StatusOr<std::vector<Conversation>> work = MakeWorkload(w);
    if (!work.ok()) {
      std::cerr << "mcserve-bench-serving: " << work.status().message() << "\n";
      return 2;
    }
    const std::vector<RequestRecord> records = RunAll(*target, *work, w.seed, name);
    reports.emplace_back(name, MakeReport(records, Wall(records)));
    windows[name] = records;
  }
  std::cout << absl::StrCat(
      which == "in_process" ? "in-process engine"
                            : absl::StrCat("addr ", absl::GetFlag(FLAGS_addr)),
      ", ", w.conversations, " conversations at ", rate, "/s (", arrivals, "), session share ",
      w.session_share, " x ", w.turns, " turns, prompt ", w.prompt_tokens, " / output ",
      w.output_tokens, " tokens (range ", w.range_ratio, "), max concurrency ",
      absl::GetFlag(FLAGS_max_concurrency), ", seed ", w.seed, "\n");
  for (const auto& [name, report] : reports) {
    std::cout << "\n== " << name << " ==\n" << ReportTable(report);
    if (window_s > 0 && report.wall_s > 2 * window_s) {
      std::cout << "\nby " << window_s << " s of send time:\n"
                << WindowTable(windows[name], window_s);
    }
  }
  if (reports.size() == 2) std::cout << "\n" << OverheadTable(reports[0].second, reports[1].second);
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    nlohmann::json out = ReportJson(reports.back().second);  // gRPC's when both ran
    for (const auto& [name, report] : reports) {
      out["targets"][name] = ReportJson(report);
      if (window_s > 0) out["targets"][name]["windows"] = WindowJson(windows[name], window_s);
    }
    if (window_s > 0) out["windows"] = WindowJson(windows[reports.back().first], window_s);
    out["config"] = {{"addr", absl::GetFlag(FLAGS_addr)},
                     {"target", which},
                     {"conversations", w.conversations},
                     {"request_rate", rate},
                     {"arrivals", arrivals},
                     {"session_share", w.session_share},
                     {"turns", w.turns},
                     {"think_time_s", w.think_s},
                     {"prompt_tokens", w.prompt_tokens},
                     {"output_tokens", w.output_tokens},
                     {"range_ratio", w.range_ratio},
                     {"max_concurrency", absl::GetFlag(FLAGS_max_concurrency)},
                     {"seed", w.seed}};
    std::ofstream(path) << out.dump(2) << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace mcserve::bench

int main(int argc, char** argv) {
  mcserve::SetFlagsHelp(
      "mcserve-bench-serving [--addr=HOST:PORT] [--conversations=N] [--request_rate=R|inf]\n"
      "  [--arrivals=poisson|fixed] [--session_share=F --turns=N --think_time=D]\n"
      "  [--prompt_tokens=N --output_tokens=N --range_ratio=R] [--max_concurrency=N]\n"
      "  [--timeout=D] [--seed=S] [--json=FILE] [--target=grpc|in_process|both --model=DIR ...]\n"
      "Load over real gRPC, after vLLM's benchmark_serving (bench/serving/).",
      {"bench/serving/serving_bench.cc", "server/server_options.cc"});
  absl::SetFlag(&FLAGS_log_level, "warning");  // the in-process engine's per-request lines
  absl::ParseCommandLine(argc, argv);
  return mcserve::bench::Main();
}
