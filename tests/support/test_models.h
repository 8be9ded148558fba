// Helpers for tests that need a real model: small random MC models written
// to a temporary directory, and a driver that feeds tokens through a model
// with trivial slot bookkeeping.
#ifndef MCSERVE_TESTS_SUPPORT_TEST_MODELS_H_
#define MCSERVE_TESTS_SUPPORT_TEST_MODELS_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "server/model/config.h"
#include "server/model/mc_model.h"

namespace mcserve::testing {

// A small config: V=260, D=32, 2 layers, 2 heads of 8, d_ff=48.
model::ModelConfig SmallConfig(model::MemoryRule rule, bool decay, model::Aggregation agg,
                               int32_t segment_length, model::Boundary boundary, int32_t top_k = 2);

// A fresh directory under the test temp dir.
std::string FreshDir(const std::string& name);

// Writes a random model with `config` and loads it.
std::unique_ptr<model::McModel> MakeModel(const model::ModelConfig& config, uint64_t seed,
                                          model::CkptDtype dtype = model::CkptDtype::kFloat32,
                                          int32_t prefill_piece = 64);

// Feeds tokens of one session through a model; slots are handed out in order.
class SessionDriver {
 public:
  explicit SessionDriver(model::McModel* model, int64_t ckpt_capacity = 256);

  // Logits [n, V] of feeding `tokens` one at a time through Decode.
  at::Tensor DecodeEach(const std::vector<int32_t>& tokens);
  // Logits [n, V] of one Prefill call.
  at::Tensor PrefillAll(const std::vector<int32_t>& tokens);

  int64_t position() const { return position_; }
  const std::vector<int32_t>& ckpts() const { return ckpts_; }
  model::CacheTensors& cache() { return cache_; }

 private:
  model::McModel* model_;
  model::CacheTensors cache_;
  int64_t position_ = 0;
  int32_t next_slot_ = 0;
  std::vector<int32_t> ckpts_;
};

// `n` seeded random byte-model token ids (0..257).
std::vector<int32_t> RandomTokens(int n, uint64_t seed);

// max |a - b| / max |b|
double RelError(const at::Tensor& a, const at::Tensor& b);

}  // namespace mcserve::testing

#endif  // MCSERVE_TESTS_SUPPORT_TEST_MODELS_H_
