#include "server/kernels/cpu_isa.h"

#include <cstdlib>

namespace mcserve::kernels {
namespace {

CpuIsa Detect() {
#if MCSERVE_HAVE_CPU_ISAS
  // libgcc's checks include the OS's saving of the wider registers (XCR0).
  // Its data is filled by a constructor; init first in case this runs
  // before it (a no-op after).
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f")) return CpuIsa::kAvx512;  // as its entries' target
  if (avx2) return CpuIsa::kAvx2;
#endif
  return CpuIsa::kBaseline;
}

CpuIsa Detected() {
  static const CpuIsa detected = Detect();
  return detected;
}

CpuIsa Capped(CpuIsa best) {
  const char* cap = std::getenv("MCSERVE_MAX_CPU_ISA");
  if (cap == nullptr) return best;
  for (CpuIsa isa : {CpuIsa::kBaseline, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (CpuIsaName(isa) == cap) return isa < best ? isa : best;
  }
  return best;
}

}  // namespace

bool CpuSupports(CpuIsa isa) { return isa <= Detected(); }

CpuIsa BestCpuIsa() {
  static const CpuIsa best = Capped(Detected());
  return best;
}

std::string_view CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kBaseline:
      break;
  }
  return "baseline";
}

}  // namespace mcserve::kernels
