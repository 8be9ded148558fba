// The x86 instruction sets the CPU kernels are built for, and which one a
// call runs.
//
// A kernel whose loops use GCC vector types is compiled once per set with
// that set's own vector width (sixteen floats for AVX-512, eight for AVX2,
// four for the baseline): a type wider than the set's registers is lowered
// element by element through memory, about 40x slower (docs/benchmarks.md).
// `target_clones` (cpu_clones.h) cannot change a type per copy, so such a
// kernel has one entry per set, marked MCSERVE_TARGET_AVX512 /
// MCSERVE_TARGET_AVX2, and picks one with BestCpuIsa().
#ifndef MCSERVE_SERVER_KERNELS_CPU_ISA_H_
#define MCSERVE_SERVER_KERNELS_CPU_ISA_H_

#include <string_view>

namespace mcserve::kernels {

enum class CpuIsa { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The widest set this CPU (and its OS) runs, detected once, capped by the
// environment variable MCSERVE_MAX_CPU_ISA (baseline, avx2 or avx512) when
// it is set: a benchmark on an AVX-512 machine can measure the AVX2 copies.
// An unknown value is ignored. (The cap is for the kernels that dispatch
// here; `target_clones` functions pick their copy themselves.) Off x86 (GCC, ELF) always kBaseline.
CpuIsa BestCpuIsa();

// Whether this CPU runs `isa` (ignoring MCSERVE_MAX_CPU_ISA).
bool CpuSupports(CpuIsa isa);

std::string_view CpuIsaName(CpuIsa isa);

}  // namespace mcserve::kernels

#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__)
#define MCSERVE_HAVE_CPU_ISAS 1
#define MCSERVE_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define MCSERVE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define MCSERVE_HAVE_CPU_ISAS 0
#endif

#endif  // MCSERVE_SERVER_KERNELS_CPU_ISA_H_
