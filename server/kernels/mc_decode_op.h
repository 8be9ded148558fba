// LibTorch wrappers of the MC decode kernels: validate shapes, dtypes,
// devices and slot indices, then run the CPU reference (CPU tensors) or the
// CUDA kernels (CUDA tensors) on the same arguments. Every failure is an
// absl::Status naming the offending tensor or index; nothing is written
// before validation passes.
//
// Work done once per step is in DecodeBatch::Create: it validates the step's
// index arrays (the engine's slot tables, built on the host) and copies them
// to the pools' device in one transfer; on CUDA it also plans the launch
// (the split count, from the device's multiprocessor count) and allocates
// the kernels' workspace, both shared by every layer of the step. Each
// layer then calls DecodeLayer, which only launches.
//
// CUDA work runs on LibTorch's current stream of the pools' device
// (c10::cuda::getCurrentCUDAStream), the stream the surrounding LibTorch ops
// use, so it is ordered with them without extra synchronization; layers
// reuse the workspace because their kernels run one after another on it.
// Create allocates on the current stream too: use a batch on the stream
// that was current when it was made.
#ifndef MCSERVE_SERVER_KERNELS_MC_DECODE_OP_H_
#define MCSERVE_SERVER_KERNELS_MC_DECODE_OP_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/kernels/mc_decode_plan.h"
#include "server/kernels/mc_params.h"

namespace mcserve::kernels {

// The MC state pools, all layers (server/model/cache_tensors.h); d = dk =
// params.head_dim, dv = ValueDim(params).
struct McPools {
  at::Tensor state;    // [state_slots, L, H, d, dv] float32
  at::Tensor key_sum;  // [state_slots, L, H, d] float32
  at::Tensor ckpt;     // [ckpt_slots, L, H, d, dv] float32 or bfloat16 (params.ckpt_dtype)
  at::Tensor summary;  // [ckpt_slots, L, H, d] float32
};

// Host index arrays of one decode step; row b is one session.
struct DecodeIndex {
  std::vector<int32_t> state_slots;  // [B]; < 0: padding row
  std::vector<int64_t> positions;    // [B] position of the token fed
  int64_t table_stride = 1;          // >= 1
  std::vector<int32_t> ckpt_table;   // [B * table_stride] checkpoint slots, oldest first
  std::vector<int32_t> ckpt_counts;  // [B] valid entries of each table row
  // Sessions whose segment the step closes, and the checkpoint slot each
  // freezes into (< 0: keep none).
  std::vector<int32_t> closing_state_slots;
  std::vector<int32_t> closing_dst_slots;
};

// A validated DecodeIndex, on the pools' device.
class DecodeBatch {
 public:
  static absl::StatusOr<DecodeBatch> Create(const McLayerParams& params, const McPools& pools,
                                            DecodeIndex index);

  DecodeBatch(DecodeBatch&&) = default;
  DecodeBatch& operator=(DecodeBatch&&) = default;
  DecodeBatch(const DecodeBatch&) = delete;  // CPU pointers alias index_
  DecodeBatch& operator=(const DecodeBatch&) = delete;

  // True when the batch was validated against exactly these pool tensors.
  bool MadeFor(const McPools& pools) const;
  // True when `params` has the layer shape the batch was planned for (heads,
  // head_dim, aggregation, top_k).
  bool PlannedFor(const McLayerParams& params) const;
  int32_t size() const { return static_cast<int32_t>(index_.state_slots.size()); }
  int64_t table_stride() const { return index_.table_stride; }
  int32_t closing() const { return static_cast<int32_t>(index_.closing_state_slots.size()); }
  const DecodeIndex& host() const { return index_; }

  // Device copies (aliases of the host vectors on CPU).
  const int32_t* state_slots() const { return state_slots_; }
  const int64_t* positions() const { return positions_; }
  const int32_t* ckpt_table() const { return ckpt_table_; }
  const int32_t* ckpt_counts() const { return ckpt_counts_; }
  const int32_t* closing_state_slots() const { return closing_state_; }
  const int32_t* closing_dst_slots() const { return closing_dst_; }

  // CUDA only: the launch plan of every layer of the step, and its workspace
  // (plan.workspace_bytes on the pools' device).
  const McDecodeCudaPlan& cuda_plan() const { return plan_; }
  const at::Tensor& workspace() const { return workspace_; }

 private:
  DecodeBatch() = default;

  McPools pools_;         // what the index was validated against
  McLayerParams params_;  // the layer shape it was planned for
  DecodeIndex index_;
  at::Tensor device_copy_;  // one buffer holding every array, on CUDA
  McDecodeCudaPlan plan_;
  at::Tensor workspace_;
  const int32_t* state_slots_ = nullptr;
  const int64_t* positions_ = nullptr;
  const int32_t* ckpt_table_ = nullptr;
  const int32_t* ckpt_counts_ = nullptr;
  const int32_t* closing_state_ = nullptr;
  const int32_t* closing_dst_ = nullptr;
};

// One layer's mixer inputs for the batch, on the pools' device, float32.
struct DecodeInputs {
  at::Tensor q, k;   // [B, H, d]; normalised (q scaled as it reads S)
  at::Tensor v;      // [B, H, dv]
  at::Tensor u;      // [B, H, d] for grm, soup, ssc; undefined otherwise
  at::Tensor alpha;  // [B, H] sigmoid decay for scalar decay; undefined otherwise
  at::Tensor beta;   // [B, H] sigmoid write strength for delta; undefined otherwise
};

// Runs layer `layer`'s decode step (mc_decode.h) with a batch made for
// `pools` and `params`' layer shape (validated and planned there, so not
// again per layer): updates the sessions' online state in place and returns
// the aggregated read [B, H, dv]. When `ckpt_weights` is set, it receives
// [B, table_stride] gate weights (device tensor). Then freezes the
// checkpoints of the sessions whose segment closed.
absl::StatusOr<at::Tensor> DecodeLayer(const McLayerParams& params, const McPools& pools,
                                       int64_t layer, const DecodeBatch& batch,
                                       const DecodeInputs& in, at::Tensor* ckpt_weights);

// True when this build can run the kernels on CUDA tensors.
bool CudaKernelsBuilt();

}  // namespace mcserve::kernels

#endif  // MCSERVE_SERVER_KERNELS_MC_DECODE_OP_H_
