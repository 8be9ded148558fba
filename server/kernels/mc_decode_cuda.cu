// Launchers of the MC decode kernels (mc_decode_cuda.h): shape checks, the
// split plan, template dispatch, and the checkpoint-freeze kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

#include "server/kernels/bf16.h"
#include "server/kernels/cuda/decode_read.cuh"
#include "server/kernels/cuda/decode_state.cuh"
#include "server/kernels/cuda/tile.cuh"
#include "server/kernels/cuda/workspace.cuh"
#include "server/kernels/mc_decode_cuda.h"

namespace mcserve::kernels {
namespace {

constexpr int32_t kMinCkptsPerSplit = 4;
constexpr int32_t kMaxSplits = 64;
// Dynamic shared memory a launch may use without opting in to more.
constexpr int64_t kMaxSharedBytes = 48 * 1024;

bool Aligned(const void* p, uintptr_t bytes) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// The vector loads (V = 4, dv a multiple of 4) need 16-byte rows of S and
// 8- or 16-byte rows of the checkpoints.
bool VectorAligned(const McLayerParams& p, const McDecodeArgs& a) {
  const uintptr_t ckpt_align = p.ckpt_dtype == CkptDtype::kBFloat16 ? 8 : 16;
  return Aligned(a.state, 16) && Aligned(a.ckpt, ckpt_align) && a.state_slot_stride % 4 == 0 &&
         a.ckpt_slot_stride % 4 == 0;
}

template <int V, int R>
cudaError_t Launch(const McLayerParams& p, const McDecodeArgs& a, const McDecodeCudaPlan& plan,
                   const cuda::Workspace& ws, cudaStream_t stream) {
  const cuda::Tile t = cuda::MakeTile(p.head_dim, ValueDim(p));
  const dim3 state_grid(a.batch, p.n_heads);
  const size_t state_smem = cuda::StateKernelSharedBytes(p.head_dim, ValueDim(p), t);
  if (p.rule == MemoryRule::kDelta) {
    cuda::DecodeStateKernel<V, R, true><<<state_grid, t.threads, state_smem, stream>>>(p, a, ws);
  } else {
    cuda::DecodeStateKernel<V, R, false><<<state_grid, t.threads, state_smem, stream>>>(p, a, ws);
  }
  if (!KeepsCheckpoints(p.aggregation)) {
    if (a.ckpt_weight_out != nullptr) {
      const size_t bytes = sizeof(float) * a.batch * a.ckpt_table_stride;
      if (cudaError_t e = cudaMemsetAsync(a.ckpt_weight_out, 0, bytes, stream); e != cudaSuccess) {
        return e;
      }
    }
    return cudaGetLastError();
  }
  const dim3 read_grid(plan.num_splits, p.n_heads, a.batch);
  const size_t read_smem = cuda::ReadKernelSharedBytes(ValueDim(p), t);
  if (p.ckpt_dtype == CkptDtype::kBFloat16) {
    cuda::DecodeReadKernel<V, R, uint16_t><<<read_grid, t.threads, read_smem, stream>>>(p, a, ws);
  } else {
    cuda::DecodeReadKernel<V, R, float><<<read_grid, t.threads, read_smem, stream>>>(p, a, ws);
  }
  cuda::DecodeReduceKernel<<<a.batch, 256, 0, stream>>>(p, a, ws, plan.num_splits);
  return cudaGetLastError();
}

// Picks the register tile: the smaller one when each thread owns at most 4
// rows of S (square heads up to d = 64).
template <int V>
cudaError_t LaunchTiled(const McLayerParams& p, const McDecodeArgs& a, const McDecodeCudaPlan& plan,
                        const cuda::Workspace& ws, cudaStream_t stream) {
  const cuda::Tile t = cuda::MakeTile(p.head_dim, ValueDim(p));
  const int rows = (p.head_dim + t.groups - 1) / t.groups;
  if (rows <= 4) return Launch<V, 4>(p, a, plan, ws, stream);
  return Launch<V, cuda::kMaxRowsPerThread>(p, a, plan, ws, stream);
}

// grid (B, H), block 256: freezes S into the checkpoint slot, writes the
// summary, clears the key sum (and S on reset).
template <typename T>
__global__ void __launch_bounds__(256) CheckpointKernel(McLayerParams p, McCheckpointArgs a) {
  const int b = blockIdx.x, h = blockIdx.y, dk = p.head_dim;
  const int32_t slot = a.state_slots[b];
  if (slot < 0) return;
  const int32_t dst = a.dst_slots[b];
  const int64_t dd = int64_t{dk} * ValueDim(p);
  float* s = a.state + slot * a.state_slot_stride + h * dd;
  float* ks = a.key_sum + slot * a.key_sum_slot_stride + int64_t{h} * dk;
  T* c = dst >= 0 ? static_cast<T*>(a.ckpt) + dst * a.ckpt_slot_stride + h * dd : nullptr;
  const bool reset = p.boundary == Boundary::kReset;
  for (int64_t e = threadIdx.x; e < dd; e += blockDim.x) {
    const float x = s[e];
    if (c != nullptr) {
      if constexpr (sizeof(T) == 2) {
        c[e] = FloatToBf16(x);
      } else {
        c[e] = x;
      }
    }
    if (reset) s[e] = 0.0f;
  }
  const float c_len = static_cast<float>(p.segment_length);
  for (int j = threadIdx.x; j < dk; j += blockDim.x) {
    if (dst >= 0) a.summary[dst * a.summary_slot_stride + int64_t{h} * dk + j] = ks[j] / c_len;
    ks[j] = 0.0f;
  }
}

}  // namespace

cudaError_t McCudaCheckShape(const McLayerParams& p) {
  const int32_t dk = p.head_dim, dv = ValueDim(p);
  if (p.n_heads < 1 || p.segment_length < 1 || !cuda::TileFits(dk, dv)) {
    return cudaErrorInvalidValue;
  }
  // The state kernel's shared memory: only very tall heads (dk in the
  // thousands, dv <= 4) pass TileFits yet need more.
  if (cuda::StateKernelSharedBytes(dk, dv, cuda::MakeTile(dk, dv)) > kMaxSharedBytes) {
    return cudaErrorInvalidValue;
  }
  if (p.aggregation == Aggregation::kSsc && p.top_k < 1) return cudaErrorInvalidValue;
  return cudaSuccess;
}

cudaError_t PlanMcDecodeCudaSplits(const McLayerParams& p, int32_t batch, int64_t max_ckpts,
                                   int32_t num_splits, McDecodeCudaPlan* plan) {
  if (cudaError_t e = McCudaCheckShape(p); e != cudaSuccess) return e;
  if (batch < 0 || max_ckpts < 1 || num_splits < 1 || batch > 65535) return cudaErrorInvalidValue;
  plan->batch = batch;
  plan->max_ckpts = max_ckpts;
  plan->num_splits = num_splits;
  cuda::Workspace ws;
  plan->workspace_bytes = cuda::CarveWorkspace(nullptr, batch, p.n_heads, ValueDim(p), max_ckpts,
                                               cuda::SelectionSlots(p), num_splits, &ws);
  return cudaSuccess;
}

cudaError_t PlanMcDecodeCuda(const McLayerParams& p, int32_t batch, int64_t max_ckpts,
                             int32_t sm_count, McDecodeCudaPlan* plan) {
  int64_t splits = 1;
  if (KeepsCheckpoints(p.aggregation) && batch > 0) {
    const int64_t blocks = int64_t{batch} * p.n_heads;
    const int64_t want = (2 * int64_t{std::max(sm_count, 1)} + blocks - 1) / blocks;
    const int64_t top_k = cuda::SelectionSlots(p);
    const int64_t walked = top_k > 0 ? std::min(top_k, max_ckpts) : max_ckpts;
    const int64_t most = (walked + kMinCkptsPerSplit - 1) / kMinCkptsPerSplit;
    splits = std::clamp<int64_t>(std::min(want, most), 1, kMaxSplits);
  }
  return PlanMcDecodeCudaSplits(p, batch, max_ckpts, static_cast<int32_t>(splits), plan);
}

cudaError_t McDecodeCuda(const McLayerParams& p, const McDecodeArgs& a,
                         const McDecodeCudaPlan& plan, void* workspace, cudaStream_t stream) {
  if (cudaError_t e = McCudaCheckShape(p); e != cudaSuccess) return e;
  if (plan.batch != a.batch || plan.max_ckpts != a.ckpt_table_stride || plan.num_splits < 1) {
    return cudaErrorInvalidValue;
  }
  if (a.batch == 0) return cudaSuccess;
  if (!Aligned(workspace, 256)) return cudaErrorMisalignedAddress;
  cuda::Workspace ws;
  cuda::CarveWorkspace(workspace, a.batch, p.n_heads, ValueDim(p), a.ckpt_table_stride,
                       cuda::SelectionSlots(p), plan.num_splits, &ws);
  // V follows the columns (cuda/tile.cuh MakeTile).
  if (ValueDim(p) % 4 != 0) return LaunchTiled<1>(p, a, plan, ws, stream);
  if (!VectorAligned(p, a)) return cudaErrorMisalignedAddress;
  return LaunchTiled<4>(p, a, plan, ws, stream);
}

cudaError_t McCheckpointCuda(const McLayerParams& p, const McCheckpointArgs& a,
                             cudaStream_t stream) {
  if (a.batch == 0) return cudaSuccess;
  if (p.n_heads < 1 || p.head_dim < 1 || a.batch > 65535) return cudaErrorInvalidValue;
  const dim3 grid(a.batch, p.n_heads);
  if (p.ckpt_dtype == CkptDtype::kBFloat16) {
    CheckpointKernel<uint16_t><<<grid, 256, 0, stream>>>(p, a);
  } else {
    CheckpointKernel<float><<<grid, 256, 0, stream>>>(p, a);
  }
  return cudaGetLastError();
}

cudaError_t CudaSmCount(int device, int32_t* sm_count) {
  static std::mutex mu;
  static std::vector<int32_t> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (device < 0) return cudaErrorInvalidDevice;
  if (static_cast<size_t>(device) < cache.size() && cache[device] > 0) {
    *sm_count = cache[device];
    return cudaSuccess;
  }
  int value = 0;
  if (cudaError_t e = cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, device);
      e != cudaSuccess) {
    return e;
  }
  if (cache.size() <= static_cast<size_t>(device)) cache.resize(device + 1, 0);
  cache[device] = value;
  *sm_count = value;
  return cudaSuccess;
}

}  // namespace mcserve::kernels
