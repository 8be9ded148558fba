// Aligns the BLAS library's own thread pool with the engine's intra-op
// thread count. LibTorch's at::set_num_threads does not reach OpenBLAS,
// whose idle threads spin (sched_yield) and, on a busy machine, take cores
// from the engine: with 2 cores shared, a 16-session decode step ran 11x
// slower until OpenBLAS was given the same thread count.
#ifndef MCSERVE_SERVER_UTIL_BLAS_THREADS_H_
#define MCSERVE_SERVER_UTIL_BLAS_THREADS_H_

namespace mcserve {

// Calls openblas_set_num_threads(n) if OpenBLAS is loaded in the process;
// returns whether it was. Other BLAS libraries are left alone.
bool SetBlasThreads(int n);

}  // namespace mcserve

#endif  // MCSERVE_SERVER_UTIL_BLAS_THREADS_H_
