// Gate weights of one (session, head) on the device: mc_gates.h's
// AggregationWeights with the logits spread over a block. Device-only.
#ifndef MCSERVE_SERVER_KERNELS_CUDA_DECODE_GATES_CUH_
#define MCSERVE_SERVER_KERNELS_CUDA_DECODE_GATES_CUH_

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "server/kernels/cuda/tile.cuh"
#include "server/kernels/cuda/workspace.cuh"
#include "server/kernels/mc_decode.h"
#include "server/kernels/mc_params.h"

namespace mcserve::kernels::cuda {

// Shared scratch of the gate computation.
struct GateScratch {
  float* f;    // kWarp floats
  int32_t* i;  // kWarp ints
};

// softmax over z_on and w[0..n) (the logits; entries equal to -inf take no
// part), written back as weights. Returns the online weight.
__device__ inline float SoftmaxInPlace(float z_on, float* w, int32_t n, GateScratch s) {
  float m = z_on;
  for (int32_t i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, w[i]);
  m = BlockMax(m, s.f);
  float part = 0.0f;
  for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
    w[i] = expf(w[i] - m);
    part += w[i];
  }
  const float e_on = expf(z_on - m);
  const float inv = 1.0f / (e_on + BlockSum(part, s.f));
  for (int32_t i = threadIdx.x; i < n; i += blockDim.x) w[i] *= inv;
  __syncthreads();
  return e_on * inv;
}

// ssc with n > top_k: picks the top_k entries of w[0..n) (logits) in rounds
// of block arg-max, records them in sel / sel_z, and leaves w holding their
// weights and 0 elsewhere. Returns the online weight.
__device__ inline float SelectAndWeigh(int32_t top_k, float z_on, float* w, int32_t n, int32_t* sel,
                                       float* sel_z, GateScratch s) {
  for (int32_t r = 0; r < top_k; ++r) {
    float bz = -INFINITY;
    int32_t bi = -1;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
      if (w[i] != -INFINITY && Better(w[i], i, bz, bi)) {
        bz = w[i];
        bi = i;
      }
    }
    bi = BlockArgBest(bz, bi, s.f, s.i);
    if (threadIdx.x == 0) {
      sel[r] = bi;
      sel_z[r] = bi >= 0 ? w[bi] : -INFINITY;
      if (bi >= 0) w[bi] = -INFINITY;
    }
    __syncthreads();
  }
  for (int32_t i = threadIdx.x; i < n; i += blockDim.x) w[i] = 0.0f;
  __syncthreads();
  const float w_on = SoftmaxInPlace(z_on, sel_z, top_k, s);
  if (threadIdx.x == 0) {
    for (int32_t r = 0; r < top_k; ++r) {
      if (sel[r] >= 0) w[sel[r]] = sel_z[r];
    }
  }
  __syncthreads();
  return w_on;
}

// Writes the weight of each of the n table entries to w and returns the
// online weight; sets *n_read to the entries the read kernel must walk. `u`
// and `ks` are shared (dk floats); `count` is the open segment's length.
__device__ inline float ComputeGates(const McLayerParams& p, const McDecodeArgs& a, int32_t b,
                                     int32_t h, const float* u, const float* ks, int32_t n,
                                     int64_t count, float* w, int32_t* sel, float* sel_z,
                                     int32_t* n_read, GateScratch s) {
  const int dk = p.head_dim;
  switch (p.aggregation) {
    case Aggregation::kNone:
      if (threadIdx.x == 0) *n_read = 0;
      return 1.0f;
    case Aggregation::kResidual:
    case Aggregation::kMean: {
      const float wc =
          p.aggregation == Aggregation::kMean ? 1.0f / static_cast<float>(1 + n) : 1.0f;
      for (int32_t i = threadIdx.x; i < n; i += blockDim.x) w[i] = wc;
      if (threadIdx.x == 0) *n_read = n;
      __syncthreads();
      return wc;
    }
    case Aggregation::kGrm:
    case Aggregation::kSoup:
    case Aggregation::kSsc:
      break;
  }
  const float z_on =
      __fdiv_rn(__fmul_rn(p.gate_scale, DotExact(u, ks, dk)), static_cast<float>(count));
  const int32_t* table = a.ckpt_table + b * a.ckpt_table_stride;
  for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float* sum = a.summary + table[i] * a.summary_slot_stride + int64_t{h} * dk;
    w[i] = __fmul_rn(p.gate_scale, DotExact(u, sum, dk));
  }
  __syncthreads();
  if (p.aggregation == Aggregation::kSsc && n > p.top_k) {
    if (threadIdx.x == 0) *n_read = p.top_k;
    return SelectAndWeigh(p.top_k, z_on, w, n, sel, sel_z, s);
  }
  if (p.aggregation == Aggregation::kSsc) {
    // Every entry is selected: the read kernel walks sel as for n > top_k.
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x) sel[i] = i;
  }
  if (threadIdx.x == 0) *n_read = n;
  return SoftmaxInPlace(z_on, w, n, s);
}

}  // namespace mcserve::kernels::cuda

#endif  // MCSERVE_SERVER_KERNELS_CUDA_DECODE_GATES_CUH_
