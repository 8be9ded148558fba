#include "server/model/cache_tensors.h"

namespace mcserve::model {

at::ScalarType CkptScalarType(CkptDtype d) {
  return d == CkptDtype::kBFloat16 ? at::kBFloat16 : at::kFloat;
}

CacheTensors AllocateCache(const ModelConfig& c, const StateLayout& layout, int64_t state_slots,
                           int64_t ckpt_slots, CkptDtype dtype, const at::Device& device,
                           bool zero_online) {
  const int64_t L = c.n_layers, H = c.state_heads(), d = c.head_dim, dv = c.value_dim();
  const int64_t rows = c.ckpt_rows();
  const auto opts = at::TensorOptions().device(device);
  CacheTensors t;
  for (const StateTensorSpec& spec : layout) {
    std::vector<int64_t> shape = {state_slots, L};
    shape.insert(shape.end(), spec.shape.begin(), spec.shape.end());
    t.online.push_back(zero_online ? at::zeros(shape, opts.dtype(spec.dtype))
                                   : at::empty(shape, opts.dtype(spec.dtype)));
    if (zero_online && spec.initial.defined()) t.online.back().copy_(spec.initial.unsqueeze(0));
  }
  t.ckpt = at::zeros({ckpt_slots, L, H, rows, dv}, opts.dtype(CkptScalarType(dtype)));
  t.ckpt_summary = at::zeros({ckpt_slots, L, H, d}, opts.dtype(at::kFloat));
  return t;
}

void ResetSlot(const StateLayout& layout, const std::vector<at::Tensor>& online, int64_t slot) {
  for (size_t i = 0; i < layout.size(); ++i) {
    if (layout[i].initial.defined()) {
      online[i][slot].copy_(layout[i].initial);
    } else {
      online[i][slot].zero_();
    }
  }
}

int64_t StateBytes(const ModelConfig& c, const StateLayout& layout) {
  int64_t bytes = 0;
  for (const StateTensorSpec& spec : layout) {
    int64_t n = c.n_layers;
    for (int64_t s : spec.shape) n *= s;
    bytes += n * static_cast<int64_t>(c10::elementSize(spec.dtype));
  }
  return bytes;
}

int64_t CheckpointBytes(const ModelConfig& c, CkptDtype dtype) {
  const int64_t elem = dtype == CkptDtype::kBFloat16 ? 2 : 4;
  const int64_t h = c.state_heads();
  return c.n_layers * (h * c.ckpt_rows() * c.value_dim() * elem + h * c.head_dim * 4);
}

}  // namespace mcserve::model
