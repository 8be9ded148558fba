// MCSERVE_HD marks small helpers callable from host and device code.
#ifndef MCSERVE_SERVER_KERNELS_HD_H_
#define MCSERVE_SERVER_KERNELS_HD_H_

#ifdef __CUDACC__
#define MCSERVE_HD __host__ __device__ __forceinline__
#else
#define MCSERVE_HD inline
#endif

#endif  // MCSERVE_SERVER_KERNELS_HD_H_
