// The traffic mcserve-bench-serving sends, drawn from a seed before the run
// (so two runs, or two servers, get the same requests): conversations
// arriving at a rate (Poisson or evenly spaced, or all at once), each a
// one-shot request or a multi-turn session, with prompt and output lengths
// drawn uniformly around their means.
#ifndef MCSERVE_BENCH_SERVING_WORKLOAD_H_
#define MCSERVE_BENCH_SERVING_WORKLOAD_H_

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace mcserve::bench {

struct WorkloadOptions {
  int32_t conversations = 100;
  // Conversation starts per second; infinity: all at time 0 (a burst).
  double rate = std::numeric_limits<double>::infinity();
  bool poisson = true;         // else evenly spaced
  double session_share = 0.0;  // of conversations, multi-turn sessions
  int32_t turns = 3;           // per session
  double think_s = 0.0;        // between a session's turns
  int32_t prompt_tokens = 128;
  int32_t output_tokens = 64;
  double range_ratio = 0.0;  // lengths uniform in mean * [1 - r, 1 + r]
  int32_t token_lo = 0;      // prompt ids are drawn from [token_lo, token_hi)
  int32_t token_hi = 256;
  uint64_t seed = 0;
};

struct Turn {
  std::vector<uint32_t> prompt;
  int32_t output_tokens = 0;
};

struct Conversation {
  double start_s = 0;  // after the run's start
  bool session = false;
  std::vector<Turn> turns;  // one for a one-shot request
};

// The widest run [lo, hi) of [0, vocab) that holds neither `bos` nor `eos`.
std::pair<int32_t, int32_t> OrdinaryIds(int32_t vocab, int32_t bos, int32_t eos);

// INVALID_ARGUMENT for options out of range.
absl::StatusOr<std::vector<Conversation>> MakeWorkload(const WorkloadOptions& o);

}  // namespace mcserve::bench

#endif  // MCSERVE_BENCH_SERVING_WORKLOAD_H_
