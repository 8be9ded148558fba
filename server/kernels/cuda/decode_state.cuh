// Kernel 1 of the decode step: one block per (session, head) updates the
// online state S and the key sum in place, computes the gates, and writes
// the online part of the output. Device-only.
#ifndef MCSERVE_SERVER_KERNELS_CUDA_DECODE_STATE_CUH_
#define MCSERVE_SERVER_KERNELS_CUDA_DECODE_STATE_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "server/kernels/cuda/decode_gates.cuh"
#include "server/kernels/cuda/tile.cuh"
#include "server/kernels/cuda/workspace.cuh"
#include "server/kernels/mc_decode.h"
#include "server/kernels/mc_params.h"

namespace mcserve::kernels::cuda {

// Shared bytes the kernel needs for dk x dv heads: q, k, u, the key sum
// (dk each); v, k^T S, the read (dv each); the reduction buffer (groups x
// dv); the gate scratch (kWarp floats, kWarp ints).
__host__ __device__ inline int64_t StateKernelSharedBytes(int dk, int dv, const Tile& t) {
  return (int64_t{4} * dk + int64_t{3} * dv + int64_t{t.groups} * dv + kWarp) * 4 + kWarp * 4;
}

// grid (B, H), block t.threads, dynamic shared StateKernelSharedBytes; R is
// at least the rows each thread owns (fewer registers when dk is small).
template <int V, int R, bool kDelta>
__global__ void __launch_bounds__(kMaxThreads)
    DecodeStateKernel(McLayerParams p, McDecodeArgs a, Workspace ws) {
  const int dk = p.head_dim, dv = ValueDim(p), H = p.n_heads;
  const int b = blockIdx.x, h = blockIdx.y;
  const int64_t bh = int64_t{b} * H + h;
  const int64_t row = bh * dk;   // q, k, u
  const int64_t vrow = bh * dv;  // v, out
  const int32_t slot = a.state_slots[b];
  if (slot < 0) {  // padding row
    for (int j = threadIdx.x; j < dv; j += blockDim.x) a.out[vrow + j] = 0.0f;
    if (threadIdx.x == 0) ws.n_read[bh] = 0;
    return;
  }
  const Tile t = MakeTile(dk, dv);
  extern __shared__ float smem[];
  float* q = smem;
  float* k = q + dk;
  float* u = k + dk;
  float* ks = u + dk;
  float* v = ks + dk;
  float* kts = v + dv;
  float* read = kts + dv;
  float* red = read + dv;
  GateScratch gs{red + t.groups * dv, reinterpret_cast<int32_t*>(red + t.groups * dv + kWarp)};

  float* ks_global = a.key_sum + slot * a.key_sum_slot_stride + int64_t{h} * dk;
  for (int j = threadIdx.x; j < dk; j += blockDim.x) {
    q[j] = a.q[row + j];
    k[j] = a.k[row + j];
    u[j] = a.u != nullptr ? a.u[row + j] : 0.0f;
    ks[j] = ks_global[j] + k[j];
    ks_global[j] = ks[j];
  }
  for (int j = threadIdx.x; j < dv; j += blockDim.x) v[j] = a.v[vrow + j];
  __syncthreads();
  const float alpha = p.scalar_decay ? a.alpha[bh] : 1.0f;
  const float beta = kDelta ? a.beta[bh] : 1.0f;

  // This thread's rows of S, in registers between the delta rule's passes.
  const int g = static_cast<int>(threadIdx.x) / t.tpr;
  const int col = (static_cast<int>(threadIdx.x) % t.tpr) * V;
  const bool owns = g < t.groups;
  float* s_global = a.state + slot * a.state_slot_stride + int64_t{h} * dk * dv;
  float s[R][V];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int i = g + r * t.groups;
    if (owns && i < dk) LoadRow<V>(s_global + int64_t{i} * dv + col, s[r]);
  }
  float part[V];
  if constexpr (kDelta) {  // kts = k^T S
#pragma unroll
    for (int c = 0; c < V; ++c) part[c] = 0.0f;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int i = g + r * t.groups;
      if (owns && i < dk) {
#pragma unroll
        for (int c = 0; c < V; ++c) part[c] += k[i] * s[r][c];
      }
    }
    SumOverGroups<V>(t, dv, part, red, kts);
  }
#pragma unroll
  for (int c = 0; c < V; ++c) part[c] = 0.0f;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int i = g + r * t.groups;
    if (owns && i < dk) {
#pragma unroll
      for (int c = 0; c < V; ++c) {
        const float x =
            kDelta ? alpha * (s[r][c] - beta * k[i] * kts[col + c]) + beta * k[i] * v[col + c]
                   : alpha * s[r][c] + k[i] * v[col + c];
        s[r][c] = x;
        part[c] += q[i] * x;
      }
      StoreRow<V>(s_global + int64_t{i} * dv + col, s[r]);
    }
  }
  SumOverGroups<V>(t, dv, part, red, read);

  const int32_t n = KeepsCheckpoints(p.aggregation) ? a.ckpt_counts[b] : 0;
  const int64_t count = a.positions[b] % p.segment_length + 1;
  const int64_t top_k = SelectionSlots(p);
  const float w_on = ComputeGates(p, a, b, h, u, ks, n, count, ws.weight + bh * a.ckpt_table_stride,
                                  ws.sel + bh * top_k, ws.sel_z + bh * top_k, ws.n_read + bh, gs);
  for (int j = threadIdx.x; j < dv; j += blockDim.x) a.out[vrow + j] = w_on * read[j];
}

}  // namespace mcserve::kernels::cuda

#endif  // MCSERVE_SERVER_KERNELS_CUDA_DECODE_STATE_CUH_
