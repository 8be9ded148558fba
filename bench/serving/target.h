// Where mcserve-bench-serving sends its requests: a server over gRPC, or an
// engine in the bench's own process built from the server's own flags
// (--model, --max_running, ...: server/server_options.h), so that the same
// workload through both shows what the gRPC layer costs.
#ifndef MCSERVE_BENCH_SERVING_TARGET_H_
#define MCSERVE_BENCH_SERVING_TARGET_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/serving/workload.h"

namespace mcserve::bench {

class Target {
 public:
  virtual ~Target() = default;
  // The widest run of ids [lo, hi) without the model's BOS and EOS, for
  // random prompts.
  virtual absl::StatusOr<std::pair<int32_t, int32_t>> PromptIds() = 0;
  // The session's id as the target knows it.
  virtual absl::StatusOr<std::string> CreateSession(const std::string& id) = 0;
  virtual void DeleteSession(const std::string& id) = 0;
  // One request, sampled at temperature 1 with `seed`, exactly
  // turn.output_tokens long (EOS ignored); `on_tokens(n)` for every message
  // of n tokens as it arrives. Blocks until the stream ends.
  virtual absl::Status Generate(const Turn& turn, const std::string& session, uint64_t seed,
                                absl::Duration timeout,
                                const std::function<void(int)>& on_tokens) = 0;
};

std::unique_ptr<Target> GrpcTarget(const std::string& addr, const std::string& token);
// The engine as `mcserve` would build it from the parsed flags (no timeout:
// in-process requests run to their end).
absl::StatusOr<std::unique_ptr<Target>> InProcessTarget();

}  // namespace mcserve::bench

#endif  // MCSERVE_BENCH_SERVING_TARGET_H_
