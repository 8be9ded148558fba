// One MC mixer layer's decode step over a ragged batch of sessions
// (mc-model.md §4-5), and the boundary step that freezes a checkpoint.
//
// Framework-free: raw pointers, element strides, no allocation. Every
// function has a CPU reference (this file) and a CUDA version
// (mc_decode_cuda.h) with the same arguments; the model picks by device.
//
// Memory layouts (all row-major, float32 unless noted):
//   q, k, u      [B, H, dk]  q and k already normalised (q scaled as read)
//   v            [B, H, dv]  (dk = params.head_dim, dv = ValueDim(params))
//   alpha, beta  [B, H]      sigmoid gates; null when unused by the config
//   state pool   slot s, head h: state + s*state_slot_stride + h*dk*dv,
//                a dk x dv matrix S[i][j], i over key dims, j over value dims
//   key_sum pool slot s, head h: key_sum + s*key_sum_slot_stride + h*dk
//                (sum of keys over the open segment)
//   ckpt pool    slot c, head h: ckpt + c*ckpt_slot_stride + h*dk*dv, in
//                params.ckpt_dtype (float or bf16 as uint16_t)
//   summaries    slot c, head h: summary + c*summary_slot_stride + h*dk
//   ckpt_table   row b: ckpt_table + b*ckpt_table_stride, the session's
//                checkpoint slots oldest first; ckpt_counts[b] are valid
//   out          [B, H, dv]  the aggregated read, before o_norm
// Callers pass pool pointers already offset to the layer being run.
// A row whose state_slots[b] is negative is padding: its output is zeroed
// and nothing else is touched.
#ifndef MCSERVE_SERVER_KERNELS_MC_DECODE_H_
#define MCSERVE_SERVER_KERNELS_MC_DECODE_H_

#include <cstdint>

#include "server/kernels/mc_params.h"

namespace mcserve::kernels {

struct McDecodeArgs {
  int32_t batch = 0;
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const float* u = nullptr;      // null when aggregation has no gate
  const float* alpha = nullptr;  // null unless scalar decay
  const float* beta = nullptr;   // null unless delta rule

  float* state = nullptr;
  int64_t state_slot_stride = 0;
  float* key_sum = nullptr;
  int64_t key_sum_slot_stride = 0;
  const int32_t* state_slots = nullptr;  // [B]
  const int64_t* positions = nullptr;    // [B] position of the token fed

  const void* ckpt = nullptr;
  int64_t ckpt_slot_stride = 0;
  const float* summary = nullptr;
  int64_t summary_slot_stride = 0;
  const int32_t* ckpt_table = nullptr;
  int64_t ckpt_table_stride = 0;
  const int32_t* ckpt_counts = nullptr;  // [B]

  float* out = nullptr;
  // Optional [B, ckpt_table_stride]: the gate weight each checkpoint got,
  // averaged over heads (0 when ssc did not select it). Null to skip.
  float* ckpt_weight_out = nullptr;
};

// Updates each session's online state and key sum in place with its token,
// then writes the aggregated read to `out`. Processes rows [b_begin, b_end),
// so callers can split the batch across threads.
void McDecodeCpu(const McLayerParams& params, const McDecodeArgs& args, int32_t b_begin,
                 int32_t b_end);

struct McCheckpointArgs {
  int32_t batch = 0;
  const int32_t* state_slots = nullptr;  // [B] sessions whose segment just closed
  const int32_t* dst_slots = nullptr;    // [B] checkpoint slot; <0: keep no checkpoint
  float* state = nullptr;
  int64_t state_slot_stride = 0;
  float* key_sum = nullptr;
  int64_t key_sum_slot_stride = 0;
  void* ckpt = nullptr;
  int64_t ckpt_slot_stride = 0;
  float* summary = nullptr;
  int64_t summary_slot_stride = 0;
};

// Closes the open segment of every row: if dst_slots[b] >= 0, copies S to
// that checkpoint slot (in params.ckpt_dtype) and writes the summary
// key_sum / segment_length there; then zeroes key_sum, and S on
// Boundary::kReset.
void McCheckpointCpu(const McLayerParams& params, const McCheckpointArgs& args);

}  // namespace mcserve::kernels

#endif  // MCSERVE_SERVER_KERNELS_MC_DECODE_H_
