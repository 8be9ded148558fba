// CUDA versions of the MC decode step and checkpoint freeze (mc_decode.h has
// the contract, the layouts and the CPU reference; these compute the same
// function). Framework-free: device pointers, strides, a stream, a
// cudaError_t. No allocation: the caller passes a workspace sized by the plan.
//
// One decode step runs as three kernels on `stream`:
//   1. per (session, head): update S and the key sum in place (S is read and
//      written once, kept in registers between the delta rule's two uses),
//      read S with q, compute every gate from the small summaries (ssc: pick
//      top_k), and write the online part of the output;
//   2. per (session, head, split): read the session's weighted checkpoints in
//      one range of its table (ssc: only the selected ones) into a partial sum;
//      long caches are split across blocks, flash-decoding style, and because
//      the gates are already known the partials are plain sums (no rescaling);
//   3. per session: add the partials in a fixed order (deterministic) and
//      average the gate weights over heads for ckpt_weight_out.
// Gate logits are computed in the CPU reference's order without fused
// multiply-adds, so ssc selects exactly the checkpoints the reference selects.
//
// All pointers in McDecodeArgs / McCheckpointArgs are device pointers
// (index arrays included). Heads are dk x dv (dk = head_dim, dv = ValueDim).
// Limits (McCudaCheckShape), so a 256-thread block keeps a head's S in
// registers, at most 16 rows per thread: ceil(dk / 16) * dv <= 1024 when dv
// is a multiple of 4, else <= 256. So square heads up to 128 (a multiple of
// 4) or 63; dk = 64 with dv <= 256; dk = 128 with dv <= 128; dv = 64 with
// dk <= 256. Heads whose state kernel would need over 48 KiB of shared
// memory (dk in the thousands, dv <= 4) are refused too.
#ifndef MCSERVE_SERVER_KERNELS_MC_DECODE_CUDA_H_
#define MCSERVE_SERVER_KERNELS_MC_DECODE_CUDA_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "server/kernels/mc_decode.h"
#include "server/kernels/mc_decode_plan.h"
#include "server/kernels/mc_params.h"

namespace mcserve::kernels {

// cudaSuccess when the kernels support this layer shape, else
// cudaErrorInvalidValue.
cudaError_t McCudaCheckShape(const McLayerParams& params);

// Chooses num_splits so that a launch fills `sm_count` multiprocessors about
// twice over, with at least 4 checkpoints per split.
cudaError_t PlanMcDecodeCuda(const McLayerParams& params, int32_t batch, int64_t max_ckpts,
                             int32_t sm_count, McDecodeCudaPlan* plan);
// The same with num_splits forced (tests, benchmarks).
cudaError_t PlanMcDecodeCudaSplits(const McLayerParams& params, int32_t batch, int64_t max_ckpts,
                                   int32_t num_splits, McDecodeCudaPlan* plan);

// The decode step of mc_decode.h over rows [0, args.batch). `workspace` is
// device memory of plan.workspace_bytes (256-byte aligned, contents ignored).
// Requires plan.batch == args.batch and plan.max_ckpts == args.ckpt_table_stride.
cudaError_t McDecodeCuda(const McLayerParams& params, const McDecodeArgs& args,
                         const McDecodeCudaPlan& plan, void* workspace, cudaStream_t stream);

// McCheckpointCpu's function on the device.
cudaError_t McCheckpointCuda(const McLayerParams& params, const McCheckpointArgs& args,
                             cudaStream_t stream);

// Multiprocessor count of `device` (cached), or an error.
cudaError_t CudaSmCount(int device, int32_t* sm_count);

}  // namespace mcserve::kernels

#endif  // MCSERVE_SERVER_KERNELS_MC_DECODE_CUDA_H_
