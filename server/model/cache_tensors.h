// The device tensors that hold MC state, addressed by slot index. The engine
// owns the slot bookkeeping (which slot belongs to whom); the model reads and
// writes the tensors in place.
#ifndef MCSERVE_SERVER_MODEL_CACHE_TENSORS_H_
#define MCSERVE_SERVER_MODEL_CACHE_TENSORS_H_

#include <ATen/ATen.h>

#include <cstdint>

#include "server/model/config.h"

namespace mcserve::model {

struct CacheTensors {
  at::Tensor state;         // [state_slots, L, H, d, d] float32: online memory S
  at::Tensor key_sum;       // [state_slots, L, H, d]    float32: keys of the open segment
  at::Tensor ckpt;          // [ckpt_slots, L, H, d, d]  float32 or bfloat16
  at::Tensor ckpt_summary;  // [ckpt_slots, L, H, d]     float32: mean key of the segment
};

at::ScalarType CkptScalarType(CkptDtype d);

// Zero-filled pools on `device`.
CacheTensors AllocateCache(const ModelConfig& c, int64_t state_slots, int64_t ckpt_slots,
                           CkptDtype dtype, const at::Device& device);

// Bytes of one session's online state (S and key sum, all layers).
int64_t StateBytes(const ModelConfig& c);
// Bytes of one checkpoint (state in `dtype` plus float32 summary, all layers).
int64_t CheckpointBytes(const ModelConfig& c, CkptDtype dtype);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_CACHE_TENSORS_H_
