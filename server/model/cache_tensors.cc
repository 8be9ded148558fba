#include "server/model/cache_tensors.h"

namespace mcserve::model {

at::ScalarType CkptScalarType(CkptDtype d) {
  return d == CkptDtype::kBFloat16 ? at::kBFloat16 : at::kFloat;
}

CacheTensors AllocateCache(const ModelConfig& c, int64_t state_slots, int64_t ckpt_slots,
                           CkptDtype dtype, const at::Device& device) {
  const int64_t L = c.n_layers, H = c.n_heads, d = c.head_dim;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  CacheTensors t;
  t.state = at::zeros({state_slots, L, H, d, d}, f32);
  t.key_sum = at::zeros({state_slots, L, H, d}, f32);
  t.ckpt = at::zeros({ckpt_slots, L, H, d, d}, f32.dtype(CkptScalarType(dtype)));
  t.ckpt_summary = at::zeros({ckpt_slots, L, H, d}, f32);
  return t;
}

int64_t StateBytes(const ModelConfig& c) {
  const int64_t per_layer = int64_t{c.n_heads} * c.head_dim * (c.head_dim + 1);
  return per_layer * c.n_layers * 4;
}

int64_t CheckpointBytes(const ModelConfig& c, CkptDtype dtype) {
  const int64_t elem = dtype == CkptDtype::kBFloat16 ? 2 : 4;
  const int64_t hd = int64_t{c.n_heads} * c.head_dim;
  return c.n_layers * (hd * c.head_dim * elem + hd * 4);
}

}  // namespace mcserve::model
