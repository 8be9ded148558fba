#include "tests/support/test_models.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/model/weights.h"
#include "tests/support/test_device.h"

namespace mcserve::testing {

model::ModelConfig SmallConfig(model::MemoryRule rule, bool decay, model::Aggregation agg,
                               int32_t segment_length, model::Boundary boundary, int32_t top_k) {
  model::ModelConfig c;
  c.vocab_size = 260;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 2;
  c.head_dim = 8;
  c.d_ff = 48;
  c.tie_embeddings = false;
  c.rule = rule;
  c.scalar_decay = decay;
  c.aggregation = agg;
  c.segment_length = segment_length;
  c.boundary = boundary;
  c.top_k = agg == model::Aggregation::kSsc ? top_k : 0;
  return c;
}

std::string FreshDir(const std::string& name) {
  static std::atomic<int> counter{0};
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "mcserve_", ::getpid(), "_", counter++, "_", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::unique_ptr<model::McModel> MakeModel(const model::ModelConfig& config, uint64_t seed,
                                          model::CkptDtype dtype, int32_t prefill_piece) {
  const std::string dir = FreshDir("model");
  absl::Status s = model::WriteRandomModel(config, dir, seed);
  EXPECT_TRUE(s.ok()) << s;
  model::ModelOptions opts;
  opts.device = TestDevice();
  opts.ckpt_dtype = dtype;
  opts.prefill_piece = prefill_piece;
  auto m = model::McModel::Load(dir, opts);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : nullptr;
}

SessionDriver::SessionDriver(model::McModel* model, int64_t ckpt_capacity)
    : model_(model), cache_(model->AllocateCache(1, ckpt_capacity)) {}

at::Tensor SessionDriver::DecodeEach(const std::vector<int32_t>& tokens) {
  std::vector<at::Tensor> rows;
  for (int32_t t : tokens) {
    model::DecodeSeq s;
    s.token = t;
    s.position = position_;
    s.state_slot = 0;
    s.ckpt_slots = ckpts_;
    const bool closes = model_->CheckpointsClosed(position_, 1) == 1;
    if (closes) s.new_ckpt_slot = next_slot_;
    auto r = model_->Decode(cache_, {s});
    EXPECT_TRUE(r.ok()) << r.status();
    rows.push_back(r->logits);
    if (closes) ckpts_.push_back(next_slot_++);
    ++position_;
  }
  return at::cat(rows, 0);
}

at::Tensor SessionDriver::PrefillAll(const std::vector<int32_t>& tokens) {
  const int64_t n_new = model_->CheckpointsClosed(position_, static_cast<int64_t>(tokens.size()));
  std::vector<int32_t> fresh;
  for (int64_t i = 0; i < n_new; ++i) fresh.push_back(next_slot_++);
  model::PrefillSeq seq;
  seq.tokens = tokens;
  seq.position = position_;
  seq.state_slot = 0;
  seq.ckpt_slots = ckpts_;
  seq.new_ckpt_slots = fresh;
  seq.want_logits = true;
  auto r = model_->Prefill(cache_, seq);
  EXPECT_TRUE(r.ok()) << r.status();
  ckpts_.insert(ckpts_.end(), fresh.begin(), fresh.end());
  position_ += static_cast<int64_t>(tokens.size());
  return r.ok() ? *r : at::Tensor();
}

std::vector<int32_t> RandomTokens(int n, uint64_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(rng() % 258));
  return t;
}

double RelError(const at::Tensor& a, const at::Tensor& b) {
  const double denom = b.abs().max().item<double>();
  return (a - b).abs().max().item<double>() / std::max(denom, 1e-30);
}

}  // namespace mcserve::testing
