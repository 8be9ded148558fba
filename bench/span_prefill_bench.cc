// mcserve-span-prefill-bench: the span prefill's CPU loops
// (server/kernels/span_prefill_cpu.h) in every instruction set's copy this
// CPU runs, in one run: time per call of the online part (delta rule with
// decay, every boundary closed) and of the checkpoint read (given weights),
// their GFLOP/s, each copy against the best one, and the fraction of a GEMM
// rate measured in the same run. The default shapes are the default model's
// layer over a 1024-token span (4 heads of 32, segments of 32, 16
// checkpoints). Run with OPENBLAS_NUM_THREADS=1 beside --threads=1.
//
//   mcserve-span-prefill-bench [--heads=4] [--head_dim=32] [--segment=32]
//                              [--segments=32] [--checkpoints=16] [--repeats=200]
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/cpu_hardware.h"
#include "server/kernels/span_prefill_cpu.h"
#include "server/util/flags_help.h"

ABSL_FLAG(int64_t, heads, 4, "Heads H");
ABSL_FLAG(int64_t, head_dim, 32, "Key and value dims dk = dv");
ABSL_FLAG(int64_t, segment, 32, "Segment length C");
ABSL_FLAG(int64_t, segments, 32, "Segments G in the span (tokens: G x C)");
ABSL_FLAG(int64_t, checkpoints, 16, "Checkpoints n every segment reads");
ABSL_FLAG(int32_t, repeats, 200, "Calls per timing (best of three timings)");
ABSL_FLAG(int32_t, threads, 1,
          "LibTorch threads for the GEMM rate (the loops run on the calling thread)");

namespace mcserve::bench {
namespace {

using kernels::CpuIsa;

struct Inputs {
  std::vector<float> q, k, v, s0, ckpt, w, beta, a, tail, a_end, decay, o, closed, s_end;
};

Inputs Make(int64_t H, int64_t G, int64_t C, int64_t d, int64_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  auto randn = [&](int64_t size) {
    std::vector<float> x(size);
    for (float& e : x) e = normal(rng);
    return x;
  };
  Inputs in;
  in.q = randn(H * G * C * d);
  in.k = randn(H * G * C * d);
  in.v = randn(H * G * C * d);
  in.s0 = randn(H * d * d);
  in.ckpt = randn(H * n * d * d);
  in.w = randn(H * G * C * n);
  in.beta.assign(H * G * C, 0.5f);
  in.a.resize(H * G * C);
  in.tail.resize(H * G * C);
  in.a_end.resize(H * G);
  in.decay.assign(H * G * C * C, 0.0f);
  const float per_token = 0.99f;
  for (int64_t hg = 0; hg < H * G; ++hg) {
    float at = 1.0f;
    for (int64_t t = 0; t < C; ++t) in.a[hg * C + t] = at *= per_token;
    in.a_end[hg] = at;
    for (int64_t t = 0; t < C; ++t) {
      in.tail[hg * C + t] = at / in.a[hg * C + t];
      for (int64_t j = 0; j <= t; ++j) {
        in.decay[(hg * C + t) * C + j] = in.a[hg * C + t] / in.a[hg * C + j];
      }
    }
  }
  in.o.resize(H * G * C * d);
  in.closed.resize(G * H * d * d);
  in.s_end.resize(H * d * d);
  return in;
}

// Best of three timings of `repeats` calls, seconds per call.
template <class F>
double Time(int repeats, F call) {
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i) call();
    best = std::min(best, SecondsOf(t0) / repeats);
  }
  return best;
}

int Main() {
  const int64_t H = absl::GetFlag(FLAGS_heads), d = absl::GetFlag(FLAGS_head_dim);
  const int64_t C = absl::GetFlag(FLAGS_segment), G = absl::GetFlag(FLAGS_segments);
  const int64_t n = absl::GetFlag(FLAGS_checkpoints);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  if (H < 1 || d < 1 || C < 1 || G < 1 || n < 0 || repeats < 1) {
    std::fprintf(stderr, "every size must be positive (--checkpoints may be 0)\n");
    return 2;
  }
  Inputs in = Make(H, G, C, d, n);
  kernels::SpanOnlineArgs on;
  on.heads = H;
  on.segments = G;
  on.seg_len = C;
  on.dk = on.dv = d;
  on.closed = G;
  on.q = in.q.data();
  on.k = in.k.data();
  on.v = in.v.data();
  on.beta = in.beta.data();
  on.decay = in.decay.data();
  on.a = in.a.data();
  on.tail = in.tail.data();
  on.a_end = in.a_end.data();
  on.s0 = in.s0.data();
  on.o = in.o.data();
  on.closed_state = in.closed.data();
  on.s_end = in.s_end.data();
  kernels::SpanReadArgs rd;
  rd.heads = H;
  rd.segments = G;
  rd.seg_len = C;
  rd.n = rd.n0 = n;
  rd.dk = rd.dv = d;
  rd.q = in.q.data();
  rd.ckpt = in.ckpt.data();
  rd.w = in.w.data();
  rd.o = in.o.data();
  // Products per head and segment (mc-model.md §4, the chunked form):
  // k k^T, the solve of [W | Y] (2d columns), Y S, q S, q k^T, P U, the
  // state update; the read: n checkpoints of d x d per token.
  const double tokens = static_cast<double>(H * G * C), dd = static_cast<double>(d);
  const double online_flops = tokens * (2 * C * dd + C * 2 * dd + 2 * dd * dd + 2 * dd * dd +
                                        2 * C * dd + 2 * C * dd + 2 * dd * dd);
  const double read_flops = tokens * static_cast<double>(n) * 2 * dd * dd;

  at::set_num_threads(std::max(1, absl::GetFlag(FLAGS_threads)));
  const CpuHardware hw = MeasureCpuHardware();
  std::printf(
      "span prefill loops: %lld heads of %lld, %lld segments of %lld tokens, %lld "
      "checkpoints; GEMM %.1f GFLOP/s measured; best CPU copy: %s\n",
      static_cast<long long>(H), static_cast<long long>(d), static_cast<long long>(G),
      static_cast<long long>(C), static_cast<long long>(n), hw.gemm_flops_s / 1e9,
      std::string(kernels::CpuIsaName(kernels::BestCpuIsa())).c_str());
  std::printf(
      "| copy | online us | online GFLOP/s | read us | read GFLOP/s | of GEMM rate | "
      "time / best copy |\n|---|---|---|---|---|---|---|\n");
  double best_total = 0;
  for (CpuIsa isa : {CpuIsa::kAvx512, CpuIsa::kAvx2, CpuIsa::kBaseline}) {
    if (!kernels::CpuSupports(isa)) continue;
    const double t_on = Time(repeats, [&] { kernels::SpanOnlineCpu(on, isa); });
    const double t_rd = Time(repeats, [&] { kernels::SpanReadCpu(rd, isa); });
    const double total = t_on + t_rd;
    if (best_total == 0) best_total = total;
    std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %.0f%% | %.2fx |\n",
                std::string(kernels::CpuIsaName(isa)).c_str(), t_on * 1e6,
                online_flops / t_on / 1e9, t_rd * 1e6, read_flops / t_rd / 1e9,
                100.0 * (online_flops + read_flops) / total / hw.gemm_flops_s, total / best_total);
  }
  return 0;
}

}  // namespace
}  // namespace mcserve::bench

int main(int argc, char** argv) {
  mcserve::SetFlagsHelp("mcserve-span-prefill-bench [--heads=4 --head_dim=32 --segment=32 ...]",
                        {"bench/span_prefill_bench.cc"});
  absl::ParseCommandLine(argc, argv);
  return mcserve::bench::Main();
}
