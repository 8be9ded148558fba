// An in-process Engine on a small random model, with blocking helpers, for
// tests that look inside the engine (pool occupancy, reference counts).
#ifndef MCSERVE_TESTS_SUPPORT_ENGINE_HARNESS_H_
#define MCSERVE_TESTS_SUPPORT_ENGINE_HARNESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/engine/engine.h"
#include "server/util/clock.h"

namespace mcserve::testing {

// What one request streamed back.
struct EngineResult {
  absl::Status status;
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;  // of each token (exact floats)
  engine::FinishReason reason = engine::FinishReason::kNone;
  engine::Usage usage;
};

// A request in flight; Wait() blocks until its stream ends.
class PendingRequest {
 public:
  EngineResult Wait();

 private:
  friend class EngineHarness;
  struct Channel;
  std::shared_ptr<Channel> channel_;
  uint64_t handle_ = 0;
};

class EngineHarness {
 public:
  // Loads `model_dir` and starts an engine with `options` on `clock`
  // (the real clock when null); `prefill_piece` 0: the model's default.
  EngineHarness(const std::string& model_dir, const engine::EngineOptions& options,
                Clock* clock = nullptr, model::CkptDtype ckpt_dtype = model::CkptDtype::kFloat32,
                FaultInjector* faults = nullptr, int32_t prefill_piece = 0);

  const model::McModel& model() const { return engine_->model(); }

  // Greedy generation of `max_tokens` (EOS ignored), with logprobs.
  PendingRequest Start(const std::string& session_id, const std::vector<int32_t>& prompt,
                       int32_t max_tokens);
  EngineResult Generate(const std::string& session_id, const std::vector<int32_t>& prompt,
                        int32_t max_tokens) {
    return Start(session_id, prompt, max_tokens).Wait();
  }
  void Cancel(const PendingRequest& r) { engine_->Drop(r.handle_); }

  absl::StatusOr<engine::SessionInfo> CreateSession(const std::string& id);
  absl::StatusOr<engine::SessionInfo> GetSession(const std::string& id);
  absl::Status DeleteSession(const std::string& id);
  absl::StatusOr<engine::SessionInfo> ForkSession(const std::string& parent,
                                                  const std::string& child);
  absl::StatusOr<std::string> ExportSession(const std::string& id);
  absl::StatusOr<engine::SessionInfo> ImportSession(const std::string& id, std::string bytes);

  // The state store's reference audit, after everything posted so far.
  absl::Status AuditState();
  // Status once the engine has processed everything posted so far.
  engine::EngineStatus SettledStatus();
  engine::Engine& engine() { return *engine_; }

 private:
  std::unique_ptr<engine::Engine> engine_;
  int next_id_ = 0;
};

// Writes a random model (seeded) to a fresh directory and returns it.
std::string WriteTestModel(const model::ModelConfig& config, uint64_t seed);

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_SUPPORT_ENGINE_HARNESS_H_
