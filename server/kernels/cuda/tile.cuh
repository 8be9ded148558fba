// How a thread block covers one head's dk x dv matrix, and the block-wide
// reductions the MC kernels share. Device-only (nvcc).
//
// A block covers the matrix in `groups` row groups of `tpr` threads; thread
// t owns columns [col, col + V) of rows g, g + groups, g + 2*groups, ...
// (g = t / tpr, col = (t % tpr) * V), at most kMaxRowsPerThread rows, so a
// thread can keep its part of S in registers. Columns follow the value dims
// dv, rows the key dims dk. V = 4 (16-byte float loads, 8-byte bf16 loads)
// when dv is a multiple of 4, else 1. The block is rounded up to whole
// warps; threads past tpr * groups hold no rows.
#ifndef MCSERVE_SERVER_KERNELS_CUDA_TILE_CUH_
#define MCSERVE_SERVER_KERNELS_CUDA_TILE_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "server/kernels/bf16.h"

namespace mcserve::kernels::cuda {

inline constexpr int kMaxRowsPerThread = 16;
inline constexpr int kMaxThreads = 256;  // also the launch bound: <= 255 registers
inline constexpr int kWarp = 32;

struct Tile {
  int v = 1;        // columns per thread
  int tpr = 1;      // threads per row
  int groups = 1;   // row groups
  int threads = 1;  // launched, a multiple of 32
};

// Host and device: the tile for dk x dv heads (threads > kMaxThreads, or
// rows per thread > kMaxRowsPerThread, when the head is too large for these
// kernels).
__host__ __device__ inline Tile MakeTile(int dk, int dv) {
  Tile t;
  t.v = dv % 4 == 0 ? 4 : 1;
  t.tpr = dv / t.v;
  const int min_groups = (dk + kMaxRowsPerThread - 1) / kMaxRowsPerThread;
  int want = 256 / t.tpr;
  if (want < 1) want = 1;
  if (want > dk) want = dk;
  t.groups = want > min_groups ? want : min_groups;
  t.threads = (t.tpr * t.groups + kWarp - 1) / kWarp * kWarp;
  return t;
}

__host__ __device__ inline bool TileFits(int dk, int dv) {
  if (dk < 1 || dv < 1) return false;
  const Tile t = MakeTile(dk, dv);
  return t.threads <= kMaxThreads && (dk + t.groups - 1) / t.groups <= kMaxRowsPerThread;
}

// Loads V consecutive values (as float) from a float or bf16 row.
template <int V>
__device__ __forceinline__ void LoadRow(const float* p, float (&out)[V]) {
  if constexpr (V == 4) {
    const float4 x = *reinterpret_cast<const float4*>(p);
    out[0] = x.x;
    out[1] = x.y;
    out[2] = x.z;
    out[3] = x.w;
  } else {
#pragma unroll
    for (int c = 0; c < V; ++c) out[c] = p[c];
  }
}
template <int V>
__device__ __forceinline__ void LoadRow(const uint16_t* p, float (&out)[V]) {
  if constexpr (V == 4) {
    const uint2 x = *reinterpret_cast<const uint2*>(p);
    out[0] = Bf16ToFloat(static_cast<uint16_t>(x.x & 0xffffu));
    out[1] = Bf16ToFloat(static_cast<uint16_t>(x.x >> 16));
    out[2] = Bf16ToFloat(static_cast<uint16_t>(x.y & 0xffffu));
    out[3] = Bf16ToFloat(static_cast<uint16_t>(x.y >> 16));
  } else {
#pragma unroll
    for (int c = 0; c < V; ++c) out[c] = Bf16ToFloat(p[c]);
  }
}
template <int V>
__device__ __forceinline__ void StoreRow(float* p, const float (&in)[V]) {
  if constexpr (V == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(in[0], in[1], in[2], in[3]);
  } else {
#pragma unroll
    for (int c = 0; c < V; ++c) p[c] = in[c];
  }
}

// Sums each of the `cols` (dv) columns over the row groups: every thread of
// a group puts its V partial column sums in red[g * cols + col ..], then
// threads j < cols add the groups in order. `out` is shared memory of cols
// floats. Contains barriers: every thread of the block must call it.
template <int V>
__device__ void SumOverGroups(const Tile& t, int cols, const float (&part)[V], float* red,
                              float* out) {
  const int g = static_cast<int>(threadIdx.x) / t.tpr;
  const int col = (static_cast<int>(threadIdx.x) % t.tpr) * V;
  if (g < t.groups) {
#pragma unroll
    for (int c = 0; c < V; ++c) red[g * cols + col + c] = part[c];
  }
  __syncthreads();
  for (int j = threadIdx.x; j < cols; j += blockDim.x) {
    float s = 0.0f;
    for (int gg = 0; gg < t.groups; ++gg) s += red[gg * cols + j];
    out[j] = s;
  }
  __syncthreads();
}

// <x, y> summed left to right without fused multiply-adds: the CPU
// reference's exact arithmetic, so gate logits match it bit for bit.
__device__ __forceinline__ float DotExact(const float* x, const float* y, int d) {
  float acc = 0.0f;
  for (int i = 0; i < d; ++i) acc = __fadd_rn(acc, __fmul_rn(x[i], y[i]));
  return acc;
}

// Block-wide max and sum; `scratch` is shared memory of kWarp floats. Every
// thread gets the result.
__device__ inline float BlockMax(float x, float* scratch) {
  for (int o = kWarp / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  float m = scratch[0];
  for (int w = 1; w < warps; ++w) m = fmaxf(m, scratch[w]);
  __syncthreads();
  return m;
}
__device__ inline float BlockSum(float x, float* scratch) {
  for (int o = kWarp / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  float s = 0.0f;
  for (int w = 0; w < warps; ++w) s += scratch[w];
  __syncthreads();
  return s;
}

// ssc's order (mc_gates.h SscBetter): larger logit first, ties to the larger
// index. Index -1 loses to everything.
__device__ __forceinline__ bool Better(float za, int ia, float zb, int ib) {
  if (ib < 0) return ia >= 0;
  if (ia < 0) return false;
  return za > zb || (za == zb && ia > ib);
}

// Block-wide arg-best under Better; `zs`/`is` are shared scratch of kWarp.
__device__ inline int BlockArgBest(float z, int i, float* zs, int* is) {
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const float z2 = __shfl_xor_sync(0xffffffffu, z, o);
    const int i2 = __shfl_xor_sync(0xffffffffu, i, o);
    if (Better(z2, i2, z, i)) {
      z = z2;
      i = i2;
    }
  }
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) {
    zs[warp] = z;
    is[warp] = i;
  }
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  float bz = zs[0];
  int bi = is[0];
  for (int w = 1; w < warps; ++w) {
    if (Better(zs[w], is[w], bz, bi)) {
      bz = zs[w];
      bi = is[w];
    }
  }
  __syncthreads();
  return bi;
}

}  // namespace mcserve::kernels::cuda

#endif  // MCSERVE_SERVER_KERNELS_CUDA_TILE_CUH_
