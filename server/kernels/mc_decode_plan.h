// How one CUDA decode launch (mc_decode_cuda.h) is split, and the workspace
// it needs. Plain data without CUDA headers, so the LibTorch wrapper
// (mc_decode_op.h) can keep one per step in every build.
#ifndef MCSERVE_SERVER_KERNELS_MC_DECODE_PLAN_H_
#define MCSERVE_SERVER_KERNELS_MC_DECODE_PLAN_H_

#include <cstdint>

namespace mcserve::kernels {

struct McDecodeCudaPlan {
  int32_t batch = 0;
  int64_t max_ckpts = 0;   // ckpt_table_stride of the args it is used with
  int32_t num_splits = 1;  // blocks per (session, head) reading checkpoints
  int64_t workspace_bytes = 0;
};

}  // namespace mcserve::kernels

#endif  // MCSERVE_SERVER_KERNELS_MC_DECODE_PLAN_H_
