// This machine's limits, measured in the run that reports against them: copy
// bandwidth (bytes read + written per second, 512 MiB buffers) and the
// float32 GEMM rate (LibTorch's mm, 1024 x 2048 x 2048, best of four).
#ifndef MCSERVE_BENCH_CPU_HARDWARE_H_
#define MCSERVE_BENCH_CPU_HARDWARE_H_

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

namespace mcserve::bench {

struct CpuHardware {
  double copy_bytes_s = 0;
  double gemm_flops_s = 0;
};

inline double SecondsOf(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline CpuHardware MeasureCpuHardware() {
  using Clock = std::chrono::steady_clock;
  CpuHardware hw;
  const at::Tensor a = at::rand({int64_t{128} << 20}), b = at::empty_like(a);
  double best = 1e30;
  for (int r = 0; r < 4; ++r) {
    const auto t0 = Clock::now();
    b.copy_(a);
    best = std::min(best, SecondsOf(t0));
  }
  hw.copy_bytes_s = 2.0 * static_cast<double>(a.nbytes()) / best;
  const at::Tensor x = at::randn({1024, 2048}), w = at::randn({2048, 2048});
  best = 1e30;
  for (int r = 0; r < 4; ++r) {
    const auto t0 = Clock::now();
    const at::Tensor y = at::mm(x, w);
    best = std::min(best, SecondsOf(t0));
  }
  hw.gemm_flops_s = 2.0 * 1024 * 2048 * 2048 / best;
  return hw;
}

}  // namespace mcserve::bench

#endif  // MCSERVE_BENCH_CPU_HARDWARE_H_
