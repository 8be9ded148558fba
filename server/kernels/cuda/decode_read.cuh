// Kernels 2 and 3 of the decode step: the weighted read of the cached
// checkpoints, split over blocks, and the fixed-order reduction of the
// splits into the output. Device-only.
#ifndef MCSERVE_SERVER_KERNELS_CUDA_DECODE_READ_CUH_
#define MCSERVE_SERVER_KERNELS_CUDA_DECODE_READ_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "server/kernels/cuda/tile.cuh"
#include "server/kernels/cuda/workspace.cuh"
#include "server/kernels/mc_decode.h"
#include "server/kernels/mc_params.h"

namespace mcserve::kernels::cuda {

// Shared bytes the read kernel needs for dv value dims: the reduction
// buffer (groups x dv) and the summed read (dv).
__host__ __device__ inline int64_t ReadKernelSharedBytes(int dv, const Tile& t) {
  return (int64_t{t.groups} * dv + dv) * 4;
}

// grid (splits, H, B), block t.threads. Split s walks its share of the
// n_read entries of the (session, head) — table order, or ssc's selection —
// and writes sum_i w_i M_i^T q to partial[s, b, h]. Every split writes its
// partial, zeros when it has nothing to read, so the reduction never reads
// stale scratch.
template <int V, int R, typename T>
__global__ void __launch_bounds__(kMaxThreads)
    DecodeReadKernel(McLayerParams p, McDecodeArgs a, Workspace ws) {
  const int dk = p.head_dim, dv = ValueDim(p), H = p.n_heads;
  const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t bh = int64_t{b} * H + h;
  const Tile t = MakeTile(dk, dv);
  const int g = static_cast<int>(threadIdx.x) / t.tpr;
  const int col = (static_cast<int>(threadIdx.x) % t.tpr) * V;
  const bool owns = g < t.groups;

  const int32_t m = ws.n_read[bh];
  const int32_t per = (m + gridDim.x - 1) / gridDim.x;
  const int32_t r0 = split * per;
  const int32_t r1 = r0 + per < m ? r0 + per : m;
  const bool ssc = p.aggregation == Aggregation::kSsc;
  const int64_t top_k = SelectionSlots(p);
  const float* w = ws.weight + bh * a.ckpt_table_stride;
  const int32_t* sel = ws.sel + bh * top_k;
  const int32_t* table = a.ckpt_table + b * a.ckpt_table_stride;
  const T* ckpt = static_cast<const T*>(a.ckpt) + int64_t{h} * dk * dv;

  float q[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int i = g + r * t.groups;
    q[r] = owns && i < dk ? a.q[bh * dk + i] : 0.0f;
  }
  float acc[V];
#pragma unroll
  for (int c = 0; c < V; ++c) acc[c] = 0.0f;
  for (int32_t e = r0; e < r1; ++e) {
    const int32_t idx = ssc ? sel[e] : e;
    const float wi = w[idx];
    if (wi == 0.0f) continue;  // same for the whole block: no divergence
    // Row i = g + r * groups of the checkpoint, from this thread's column.
    const T* mine = ckpt + table[idx] * a.ckpt_slot_stride + (int64_t{g} * dv + col);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int i = g + r * t.groups;
      if (owns && i < dk) {
        float x[V];
        LoadRow<V>(mine + int64_t{r} * t.groups * dv, x);
        const float wq = wi * q[r];
#pragma unroll
        for (int c = 0; c < V; ++c) acc[c] += wq * x[c];
      }
    }
  }
  extern __shared__ float smem[];
  float* red = smem;
  float* sum = red + t.groups * dv;
  SumOverGroups<V>(t, dv, acc, red, sum);
  float* out = ws.partial + ((int64_t{split} * gridDim.z + b) * H + h) * dv;
  for (int j = threadIdx.x; j < dv; j += blockDim.x) out[j] = sum[j];
}

// grid (B), block 256. out += the splits in order; ckpt_weight_out (when
// set) = the gate weights averaged over heads, 0 past the session's count.
__global__ void __launch_bounds__(256)
    DecodeReduceKernel(McLayerParams p, McDecodeArgs a, Workspace ws, int32_t splits) {
  const int H = p.n_heads, dv = ValueDim(p);
  const int b = blockIdx.x;
  const int64_t hd = int64_t{H} * dv;
  for (int64_t e = threadIdx.x; e < hd; e += blockDim.x) {
    float x = a.out[b * hd + e];
    for (int32_t s = 0; s < splits; ++s) x += ws.partial[(int64_t{s} * a.batch + b) * hd + e];
    a.out[b * hd + e] = x;
  }
  if (a.ckpt_weight_out == nullptr) return;
  const int64_t stride = a.ckpt_table_stride;
  const int32_t n = a.state_slots[b] < 0 ? 0 : a.ckpt_counts[b];
  for (int64_t i = threadIdx.x; i < stride; i += blockDim.x) {
    float x = 0.0f;
    if (i < n) {
      for (int hh = 0; hh < H; ++hh) {
        x += ws.weight[(int64_t{b} * H + hh) * stride + i] / static_cast<float>(H);
      }
    }
    a.ckpt_weight_out[b * stride + i] = x;
  }
}

}  // namespace mcserve::kernels::cuda

#endif  // MCSERVE_SERVER_KERNELS_CUDA_DECODE_READ_CUH_
