// Function attributes for the CPU kernels' hot loops.
//
// MCSERVE_CPU_CLONES builds a function for AVX-512, for AVX2 with FMA and
// for the baseline, picked once at load time (an ifunc); the loops it calls
// are MCSERVE_HOT (forced inline) so that each copy is vectorised for its
// own instruction set. Nothing with external linkage is compiled for a wider
// set than the baseline. For loops on plain floats, which the compiler
// vectorises per copy; a kernel written with GCC vector types needs a width
// per set and uses cpu_isa.h instead.
#ifndef MCSERVE_SERVER_KERNELS_CPU_CLONES_H_
#define MCSERVE_SERVER_KERNELS_CPU_CLONES_H_

#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__)
#define MCSERVE_CPU_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define MCSERVE_CPU_CLONES
#endif
#define MCSERVE_HOT inline __attribute__((always_inline))
#define MCSERVE_HOT_LAMBDA __attribute__((always_inline))

#endif  // MCSERVE_SERVER_KERNELS_CPU_CLONES_H_
