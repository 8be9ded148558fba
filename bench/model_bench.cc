// mcserve-model-bench: tokens/s of the C++ model (the engine's compute path)
// on one model directory: parallel prefill of one session, and decode steps
// of a batch of sessions that each already hold `--context` tokens.
// Prints one JSON object per measurement, for bench/cpu_compare.py, each
// with the step's floor on this machine: max(bytes moved / measured copy
// bandwidth, matmul FLOPs / measured GEMM rate), both measured in the same
// run ("hardware" line), and the fraction of that floor reached.
//
//   mcserve-model-bench --model=DIR [--prefill_tokens=1024] [--context=512]
//                       [--batches=1,16] [--decode_steps=64] [--threads=0]
//                       [--mc_config=FILE]   (fla checkpoints: MC overlay)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/cpu_hardware.h"
#include "server/kernels/mc_params.h"
#include "server/model/mc_model.h"
#include "server/util/flags_help.h"

ABSL_FLAG(std::string, model, "", "Model directory");
ABSL_FLAG(int32_t, prefill_tokens, 1024, "Prompt length for the prefill measurement");
ABSL_FLAG(int32_t, context, 512, "Tokens each session holds before the decode steps");
ABSL_FLAG(std::string, batches, "1,16", "Decode batch sizes");
ABSL_FLAG(int32_t, decode_steps, 64, "Decode steps timed per batch size");
ABSL_FLAG(int32_t, repeats, 3, "Prefill repetitions (best is reported)");
ABSL_FLAG(int32_t, threads, 0, "Intra-op threads (0: LibTorch default)");
ABSL_FLAG(std::string, mc_config, "", "fla checkpoints: MC overlay file (default: none)");
ABSL_FLAG(int32_t, prefill_piece, 256, "Longest prefill piece (the server's --prefill_piece)");

namespace mcserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::vector<int32_t> Tokens(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(3 + rng() % 250);  // past bos/eos
  return t;
}

// Weights every token multiplies by (all but the embedding lookup; a tied
// lm_head is the embedding read as a matrix).
int64_t MatmulParams(const model::McModel& m) {
  const model::Weights& w = m.weights();
  int64_t n = w.lm_head.numel();
  for (const model::LayerWeights& l : w.layers) {
    for (const at::Tensor* t : {&l.in_proj, &l.a_w, &l.b_w, &l.o_proj, &l.gate_up, &l.down}) {
      if (t->defined()) n += t->numel();
    }
  }
  return n;
}

// FLOPs of the MC mixers in a prefill of P tokens from position 0 (linear
// memory; 0 for deep memory, whose cost is not modelled here), per head and
// layer: each token's read of every checkpoint closed before its segment
// (2 dk dv each), its online state read and write (4 dk dv) and its row of
// the segment's own products, q k^T and P U (2 C (dk + dv)); the delta rule
// adds the state product Y S (2 dk dv), k k^T (2 C dk) and the solve
// (C (dk + dv)). Products of whole padded segments count as computed.
double MixerFlops(const model::McModel& m, int64_t P) {
  const model::ModelConfig& c = m.config();
  if (c.is_deep()) return 0;
  const kernels::McLayerParams p = c.LayerParams(model::CkptDtype::kFloat32);
  const double dk = p.head_dim, dv = kernels::ValueDim(p), C = p.segment_length;
  const bool delta = p.rule == kernels::MemoryRule::kDelta;
  double reads = 0;
  if (kernels::KeepsCheckpoints(p.aggregation)) {
    for (int64_t t = 0; t < P; ++t) reads += static_cast<double>(t / p.segment_length);
  }
  const double per_token =
      4 * dk * dv + 2 * C * (dk + dv) + (delta ? 2 * dk * dv + 2 * C * dk + C * (dk + dv) : 0);
  return (2 * dk * dv * reads + per_token * static_cast<double>(P)) * p.n_heads * c.n_layers;
}

// One session's bookkeeping: position and checkpoint slots.
struct Sess {
  int32_t slot = 0;
  int64_t position = 0;
  std::vector<int32_t> ckpts;
};

class Bench {
 public:
  Bench(model::McModel* m, int64_t sessions, int64_t ckpt_slots)
      : m_(m), cache_(m->AllocateCache(sessions, ckpt_slots)) {}

  // Prefills `tokens` into session `s` (allocating checkpoint slots).
  bool Prefill(Sess& s, const std::vector<int32_t>& tokens, bool want_logits) {
    const int64_t n = m_->CheckpointsClosed(s.position, static_cast<int64_t>(tokens.size()));
    std::vector<int32_t> fresh;
    for (int64_t i = 0; i < n; ++i) fresh.push_back(next_ckpt_++);
    model::PrefillSeq seq;
    seq.tokens = tokens;
    seq.position = s.position;
    seq.state_slot = s.slot;
    seq.ckpt_slots = s.ckpts;
    seq.new_ckpt_slots = fresh;
    seq.want_logits = want_logits;
    auto r = m_->Prefill(cache_, seq);
    if (!r.ok()) {
      std::fprintf(stderr, "prefill: %s\n", r.status().ToString().c_str());
      return false;
    }
    s.ckpts.insert(s.ckpts.end(), fresh.begin(), fresh.end());
    s.position += static_cast<int64_t>(tokens.size());
    return true;
  }

  // One decode step over all of `sessions`.
  bool Step(std::vector<Sess>& sessions) {
    std::vector<model::DecodeSeq> batch;
    for (Sess& s : sessions) {
      model::DecodeSeq d;
      d.token = static_cast<int32_t>(3 + s.position % 250);
      d.position = s.position;
      d.state_slot = s.slot;
      d.ckpt_slots = s.ckpts;
      if (m_->CheckpointsClosed(s.position, 1) == 1) d.new_ckpt_slot = next_ckpt_++;
      batch.push_back(d);
    }
    auto r = m_->Decode(cache_, batch);
    if (!r.ok()) {
      std::fprintf(stderr, "decode: %s\n", r.status().ToString().c_str());
      return false;
    }
    for (size_t i = 0; i < sessions.size(); ++i) {
      if (batch[i].new_ckpt_slot >= 0) sessions[i].ckpts.push_back(batch[i].new_ckpt_slot);
      ++sessions[i].position;
    }
    return true;
  }

 private:
  model::McModel* m_;
  model::CacheTensors cache_;
  int32_t next_ckpt_ = 0;
};

int Run() {
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  model::ModelOptions options;
  options.mc_config = absl::GetFlag(FLAGS_mc_config);
  options.prefill_piece = absl::GetFlag(FLAGS_prefill_piece);
  auto m = model::McModel::Load(absl::GetFlag(FLAGS_model), options);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    return 1;
  }
  std::vector<int> batches;
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(b, &v) || v < 1) return 2;
    batches.push_back(v);
  }
  const int max_b = *std::max_element(batches.begin(), batches.end());
  const int seg = (*m)->config().segment_length;
  const int P = absl::GetFlag(FLAGS_prefill_tokens), ctx = absl::GetFlag(FLAGS_context);
  const int steps = absl::GetFlag(FLAGS_decode_steps);
  const int64_t per_sess_ckpts = (std::max(P, ctx + steps) / seg + 2);
  Bench bench(m->get(), max_b + 1, per_sess_ckpts * (max_b + 1) * 2);
  at::NoGradGuard no_grad;

  const CpuHardware hw = MeasureCpuHardware();
  const double params = static_cast<double>(MatmulParams(**m));
  const double state = static_cast<double>((*m)->state_bytes());
  const double ckpt = static_cast<double>((*m)->checkpoint_bytes());
  const char* kind = (*m)->config().is_deep() ? "mlp" : "linear";
  std::printf(
      "{\"phase\":\"hardware\",\"copy_GB_s\":%.2f,\"gemm_GFLOP_s\":%.1f,"
      "\"matmul_params\":%.0f,\"state_bytes\":%.0f,\"checkpoint_bytes\":%.0f}\n",
      hw.copy_bytes_s / 1e9, hw.gemm_flops_s / 1e9, params, state, ckpt);
  // The floor of work moving `bytes` and doing `flops`.
  auto floor_s = [&hw](double bytes, double flops) {
    return std::max(bytes / hw.copy_bytes_s, flops / hw.gemm_flops_s);
  };

  // Prefill: one session, P tokens, best of `repeats` (each a fresh session slot).
  double best = 1e30;
  for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
    Bench b(m->get(), 1, per_sess_ckpts + 1);
    Sess s;
    const auto t0 = Clock::now();
    if (!b.Prefill(s, Tokens(P, 1), /*want_logits=*/false)) return 1;
    best = std::min(best, Seconds(t0, Clock::now()));
  }
  // Every piece reads the weights once and multiplies each token by them;
  // the mixers add their own products.
  const double pieces = std::ceil(static_cast<double>(P) / (*m)->options().prefill_piece);
  const double prefill_flops = 2 * params * P + MixerFlops(**m, P);
  const double prefill_floor = floor_s(4 * params * pieces, prefill_flops);
  std::printf(
      "{\"phase\":\"prefill\",\"memory\":\"%s\",\"batch\":1,\"tokens\":%d,\"seconds\":%.6f,"
      "\"tok_s\":%.1f,\"GFLOP\":%.3f,\"floor_s\":%.6f,\"of_floor\":%.3f}\n",
      kind, P, best, P / best, prefill_flops / 1e9, prefill_floor, prefill_floor / best);

  // Decode: sessions holding `ctx` tokens, `steps` timed steps.
  for (int B : batches) {
    Bench b(m->get(), B, per_sess_ckpts * B + 1);
    std::vector<Sess> sessions(B);
    for (int i = 0; i < B; ++i) {
      sessions[i].slot = i;
      if (ctx > 0 && !b.Prefill(sessions[i], Tokens(ctx, 10 + i), false)) return 1;
    }
    if (!b.Step(sessions)) return 1;  // warm-up
    const auto t0 = Clock::now();
    for (int s = 0; s < steps; ++s) {
      if (!b.Step(sessions)) return 1;
    }
    const double sec = Seconds(t0, Clock::now());
    // A step reads every weight once, each session's state (read and
    // written) and each of its checkpoints once, and multiplies each
    // session's token by the weights.
    const double n_ckpt = static_cast<double>(sessions[0].ckpts.size());
    const double per_session = state + n_ckpt * ckpt;
    const double step_floor = floor_s(4 * params + (2 * state + n_ckpt * ckpt) * B, 2 * params * B);
    std::printf(
        "{\"phase\":\"decode\",\"memory\":\"%s\",\"batch\":%d,\"context\":%d,\"steps\":%d,"
        "\"seconds\":%.6f,\"tok_s\":%.1f,\"ckpts_per_session\":%zu,\"bytes_per_session\":%.0f,"
        "\"floor_s\":%.6f,\"of_floor\":%.3f}\n",
        kind, B, ctx, steps, sec, B * steps / sec, sessions[0].ckpts.size(), per_session,
        step_floor * steps, step_floor * steps / sec);
  }
  return 0;
}

}  // namespace
}  // namespace mcserve::bench

int main(int argc, char** argv) {
  mcserve::SetFlagsHelp(
      "mcserve-model-bench --model=DIR [--prefill_tokens=N --context=N --batches=1,16 ...]",
      {"bench/model_bench.cc"});
  absl::ParseCommandLine(argc, argv);
  return mcserve::bench::Run();
}
