// mcserve-model-bench: tokens/s of the C++ model (the engine's compute path)
// on one model directory: parallel prefill of one session, and decode steps
// of a batch of sessions that each already hold `--context` tokens.
// Prints one JSON object per measurement, for bench/cpu_compare.py.
//
//   mcserve-model-bench --model=DIR [--prefill_tokens=1024] [--context=512]
//                       [--batches=1,16] [--decode_steps=64] [--threads=0]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/model/mc_model.h"
#include "server/util/flags_help.h"

ABSL_FLAG(std::string, model, "", "Model directory");
ABSL_FLAG(int32_t, prefill_tokens, 1024, "Prompt length for the prefill measurement");
ABSL_FLAG(int32_t, context, 512, "Tokens each session holds before the decode steps");
ABSL_FLAG(std::string, batches, "1,16", "Decode batch sizes");
ABSL_FLAG(int32_t, decode_steps, 64, "Decode steps timed per batch size");
ABSL_FLAG(int32_t, repeats, 3, "Prefill repetitions (best is reported)");
ABSL_FLAG(int32_t, threads, 0, "Intra-op threads (0: LibTorch default)");

namespace mcserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::vector<int32_t> Tokens(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % 256);
  return t;
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
      d.token = static_cast<int32_t>(s.position % 256);
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
  auto m = model::McModel::Load(absl::GetFlag(FLAGS_model), {});
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

  // Prefill: one session, P tokens, best of `repeats` (each a fresh session slot).
  double best = 1e30;
  for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
    Bench b(m->get(), 1, per_sess_ckpts + 1);
    Sess s;
    const auto t0 = Clock::now();
    if (!b.Prefill(s, Tokens(P, 1), /*want_logits=*/false)) return 1;
    best = std::min(best, Seconds(t0, Clock::now()));
  }
  std::printf("{\"phase\":\"prefill\",\"batch\":1,\"tokens\":%d,\"seconds\":%.6f,\"tok_s\":%.1f}\n",
              P, best, P / best);

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
    std::printf(
        "{\"phase\":\"decode\",\"batch\":%d,\"context\":%d,\"steps\":%d,\"seconds\":%.6f,"
        "\"tok_s\":%.1f,\"ckpts_per_session\":%zu}\n",
        B, ctx, steps, sec, B * steps / sec, sessions[0].ckpts.size());
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
