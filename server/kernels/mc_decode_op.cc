#include "server/kernels/mc_decode_op.h"

#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/kernels/mc_decode.h"
#include "server/util/status_macros.h"

#ifdef MCSERVE_HAVE_CUDA
#include "server/kernels/mc_decode_cuda.h"
#endif
#ifdef MCSERVE_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace mcserve::kernels {
namespace {

absl::Status CheckTensor(const at::Tensor& t, const char* name, std::vector<int64_t> shape,
                         at::ScalarType dtype, const at::Device& device) {
  if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat(name, " is missing"));
  if (t.sizes() != at::IntArrayRef(shape)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has shape ", c10::str(t.sizes()), ", expected ", c10::str(at::IntArrayRef(shape))));
  }
  if (t.scalar_type() != dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has dtype ", c10::toString(t.scalar_type()), ", expected ", c10::toString(dtype)));
  }
  if (t.device() != device) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is on ", t.device().str(), ", expected ", device.str()));
  }
  if (!t.is_contiguous()) return absl::InvalidArgumentError(absl::StrCat(name, " is strided"));
  return absl::OkStatus();
}

absl::Status CheckPools(const McLayerParams& p, const McPools& pools) {
  const int64_t H = p.n_heads, d = p.head_dim, dv = ValueDim(p);
  if (!pools.state.defined() || pools.state.dim() != 5) {
    return absl::InvalidArgumentError("state pool must be [slots, L, H, dk, dv]");
  }
  if (!pools.ckpt.defined() || pools.ckpt.dim() != 5) {
    return absl::InvalidArgumentError("checkpoint pool must be [slots, L, H, dk, dv]");
  }
  const int64_t S = pools.state.size(0), L = pools.state.size(1), C = pools.ckpt.size(0);
  const at::Device dev = pools.state.device();
  const at::ScalarType ckpt_type =
      p.ckpt_dtype == CkptDtype::kBFloat16 ? at::kBFloat16 : at::kFloat;
  RETURN_IF_ERROR(CheckTensor(pools.state, "state pool", {S, L, H, d, dv}, at::kFloat, dev));
  RETURN_IF_ERROR(CheckTensor(pools.key_sum, "key_sum pool", {S, L, H, d}, at::kFloat, dev));
  RETURN_IF_ERROR(CheckTensor(pools.ckpt, "checkpoint pool", {C, L, H, d, dv}, ckpt_type, dev));
  return CheckTensor(pools.summary, "summary pool", {C, L, H, d}, at::kFloat, dev);
}

absl::Status CheckIndex(const McLayerParams& p, const McPools& pools, const DecodeIndex& ix) {
  const size_t B = ix.state_slots.size();
  const int64_t S = pools.state.size(0), C = pools.ckpt.size(0);
  if (ix.positions.size() != B || ix.ckpt_counts.size() != B || ix.table_stride < 1 ||
      ix.ckpt_table.size() != B * static_cast<size_t>(ix.table_stride) ||
      ix.closing_state_slots.size() != ix.closing_dst_slots.size()) {
    return absl::InvalidArgumentError("decode index arrays disagree in size");
  }
  const bool keeps = KeepsCheckpoints(p.aggregation);
  for (size_t b = 0; b < B; ++b) {
    if (ix.state_slots[b] >= S) {
      return absl::OutOfRangeError(
          absl::StrCat("row ", b, ": state slot ", ix.state_slots[b], " >= pool size ", S));
    }
    if (ix.positions[b] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("row ", b, ": negative position"));
    }
    const int32_t n = ix.ckpt_counts[b];
    if (n < 0 || n > ix.table_stride) {
      return absl::OutOfRangeError(
          absl::StrCat("row ", b, ": checkpoint count ", n, " outside [0, ", ix.table_stride, "]"));
    }
    for (int32_t i = 0; keeps && ix.state_slots[b] >= 0 && i < n; ++i) {
      const int32_t c = ix.ckpt_table[b * ix.table_stride + i];
      if (c < 0 || c >= C) {
        return absl::OutOfRangeError(
            absl::StrCat("row ", b, ": checkpoint slot ", c, " outside [0, ", C, ")"));
      }
    }
  }
  for (size_t i = 0; i < ix.closing_state_slots.size(); ++i) {
    if (ix.closing_state_slots[i] >= S || ix.closing_dst_slots[i] >= C) {
      return absl::OutOfRangeError(absl::StrCat("closing segment ", i, ": slot out of range"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckInputs(const McLayerParams& p, const McPools& pools, int64_t layer, int64_t B,
                         const DecodeInputs& in) {
  if (layer < 0 || layer >= pools.state.size(1)) {
    return absl::OutOfRangeError(
        absl::StrCat("layer ", layer, " outside the pools' ", pools.state.size(1), " layers"));
  }
  const int64_t H = p.n_heads, d = p.head_dim, dv = ValueDim(p);
  if (pools.state.size(2) != H || pools.state.size(3) != d || pools.state.size(4) != dv) {
    return absl::InvalidArgumentError("the pools' heads differ from the layer's");
  }
  const at::Device dev = pools.state.device();
  RETURN_IF_ERROR(CheckTensor(in.q, "q", {B, H, d}, at::kFloat, dev));
  RETURN_IF_ERROR(CheckTensor(in.k, "k", {B, H, d}, at::kFloat, dev));
  RETURN_IF_ERROR(CheckTensor(in.v, "v", {B, H, dv}, at::kFloat, dev));
  if (IsGated(p.aggregation)) RETURN_IF_ERROR(CheckTensor(in.u, "u", {B, H, d}, at::kFloat, dev));
  if (p.scalar_decay) RETURN_IF_ERROR(CheckTensor(in.alpha, "alpha", {B, H}, at::kFloat, dev));
  if (p.rule == MemoryRule::kDelta) {
    RETURN_IF_ERROR(CheckTensor(in.beta, "beta", {B, H}, at::kFloat, dev));
  }
  return absl::OkStatus();
}

// Appends `v` to `bytes` at an 8-byte aligned offset; returns the offset.
template <typename T>
size_t Append(std::vector<uint8_t>& bytes, const std::vector<T>& v) {
  const size_t off = (bytes.size() + 7) / 8 * 8;
  bytes.resize(off + v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(bytes.data() + off, v.data(), v.size() * sizeof(T));
  return off;
}

struct LayerPointers {
  McDecodeArgs decode;
  McCheckpointArgs checkpoint;
};

LayerPointers Pointers(const McLayerParams& p, const McPools& pools, int64_t layer,
                       const DecodeBatch& batch, const DecodeInputs& in) {
  const int64_t L = pools.state.size(1), H = p.n_heads, d = p.head_dim, dv = ValueDim(p);
  const int64_t state_stride = L * H * d * dv, sum_stride = L * H * d;
  const int64_t elem = pools.ckpt.element_size();
  LayerPointers lp;
  McDecodeArgs& a = lp.decode;
  a.batch = batch.size();
  a.q = in.q.data_ptr<float>();
  a.k = in.k.data_ptr<float>();
  a.v = in.v.data_ptr<float>();
  a.u = in.u.defined() ? in.u.data_ptr<float>() : nullptr;
  a.alpha = in.alpha.defined() ? in.alpha.data_ptr<float>() : nullptr;
  a.beta = in.beta.defined() ? in.beta.data_ptr<float>() : nullptr;
  a.state = pools.state.data_ptr<float>() + layer * H * d * dv;
  a.state_slot_stride = state_stride;
  a.key_sum = pools.key_sum.data_ptr<float>() + layer * H * d;
  a.key_sum_slot_stride = sum_stride;
  a.state_slots = batch.state_slots();
  a.positions = batch.positions();
  a.ckpt = static_cast<const char*>(pools.ckpt.data_ptr()) + layer * H * d * dv * elem;
  a.ckpt_slot_stride = state_stride;
  a.summary = pools.summary.data_ptr<float>() + layer * H * d;
  a.summary_slot_stride = sum_stride;
  a.ckpt_table = batch.ckpt_table();
  a.ckpt_table_stride = batch.table_stride();
  a.ckpt_counts = batch.ckpt_counts();

  McCheckpointArgs& c = lp.checkpoint;
  c.batch = batch.closing();
  c.state_slots = batch.closing_state_slots();
  c.dst_slots = batch.closing_dst_slots();
  c.state = a.state;
  c.state_slot_stride = state_stride;
  c.key_sum = a.key_sum;
  c.key_sum_slot_stride = sum_stride;
  c.ckpt = static_cast<char*>(pools.ckpt.data_ptr()) + layer * H * d * dv * elem;
  c.ckpt_slot_stride = state_stride;
  c.summary = pools.summary.data_ptr<float>() + layer * H * d;
  c.summary_slot_stride = sum_stride;
  return lp;
}

#ifdef MCSERVE_HAVE_CUDA
absl::Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

// The launch plan of a step of `batch` rows and `stride` table entries each,
// and the workspace it needs, on `dev` (the current device).
absl::Status PlanCuda(const McLayerParams& p, const at::Device& dev, int32_t batch, int64_t stride,
                      McDecodeCudaPlan* plan, at::Tensor* workspace) {
  int32_t sms = 0;
  RETURN_IF_ERROR(CudaStatus(CudaSmCount(dev.index() < 0 ? 0 : dev.index(), &sms), "SM count"));
  RETURN_IF_ERROR(CudaStatus(PlanMcDecodeCuda(p, batch, stride, sms, plan), "plan"));
  *workspace = at::empty({plan->workspace_bytes}, at::TensorOptions(dev).dtype(at::kByte));
  return absl::OkStatus();
}

// LibTorch's current stream on `dev`.
absl::StatusOr<cudaStream_t> CurrentStream(const at::Device& dev) {
#ifdef MCSERVE_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream(dev.index()).stream();
#else
  // Unreachable: a LibTorch without CUDA makes no CUDA tensors.
  return absl::FailedPreconditionError(
      absl::StrCat("no CUDA stream for ", dev.str(), ": LibTorch was built without CUDA"));
#endif
}

absl::Status RunCuda(const McLayerParams& p, const at::Device& dev, const DecodeBatch& batch,
                     const LayerPointers& lp) {
  ASSIGN_OR_RETURN(cudaStream_t stream, CurrentStream(dev));
  RETURN_IF_ERROR(CudaStatus(
      McDecodeCuda(p, lp.decode, batch.cuda_plan(), batch.workspace().data_ptr(), stream),
      "decode"));
  return CudaStatus(McCheckpointCuda(p, lp.checkpoint, stream), "checkpoint");
}
#endif

}  // namespace

bool CudaKernelsBuilt() {
#ifdef MCSERVE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool DecodeBatch::PlannedFor(const McLayerParams& params) const {
  return params.n_heads == params_.n_heads && params.head_dim == params_.head_dim &&
         ValueDim(params) == ValueDim(params_) && params.aggregation == params_.aggregation &&
         params.top_k == params_.top_k;
}

bool DecodeBatch::MadeFor(const McPools& pools) const {
  return pools_.state.is_same(pools.state) && pools_.key_sum.is_same(pools.key_sum) &&
         pools_.ckpt.is_same(pools.ckpt) && pools_.summary.is_same(pools.summary);
}

absl::StatusOr<DecodeBatch> DecodeBatch::Create(const McLayerParams& params, const McPools& pools,
                                                DecodeIndex index) {
  RETURN_IF_ERROR(CheckPools(params, pools));
  RETURN_IF_ERROR(CheckIndex(params, pools, index));
  DecodeBatch batch;
  batch.index_ = std::move(index);
  const DecodeIndex& ix = batch.index_;
  const at::Device dev = pools.state.device();
  batch.pools_ = pools;
  batch.params_ = params;
  if (dev.is_cpu()) {
    batch.state_slots_ = ix.state_slots.data();
    batch.positions_ = ix.positions.data();
    batch.ckpt_table_ = ix.ckpt_table.data();
    batch.ckpt_counts_ = ix.ckpt_counts.data();
    batch.closing_state_ = ix.closing_state_slots.data();
    batch.closing_dst_ = ix.closing_dst_slots.data();
    return batch;
  }
  if (!dev.is_cuda() || !CudaKernelsBuilt()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no MC decode kernels for device ", dev.str(),
                     CudaKernelsBuilt() ? "" : " (built without CUDA: -DMCSERVE_CUDA=ON)"));
  }
  std::vector<uint8_t> bytes;
  const size_t o_state = Append(bytes, ix.state_slots), o_pos = Append(bytes, ix.positions);
  const size_t o_table = Append(bytes, ix.ckpt_table), o_count = Append(bytes, ix.ckpt_counts);
  const size_t o_cs = Append(bytes, ix.closing_state_slots);
  const size_t o_cd = Append(bytes, ix.closing_dst_slots);
  try {
    batch.device_copy_ =
        at::from_blob(bytes.data(), {static_cast<int64_t>(bytes.size())}, at::kByte).to(dev);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("copying the decode index to ", dev.str(), ": ", e.what_without_backtrace()));
  }
#ifdef MCSERVE_HAVE_CUDA
  try {
    const c10::DeviceGuard guard(dev);
    RETURN_IF_ERROR(
        PlanCuda(params, dev, batch.size(), ix.table_stride, &batch.plan_, &batch.workspace_));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("decode workspace on ", dev.str(), ": ", e.what_without_backtrace()));
  }
#endif
  const auto* base = static_cast<const uint8_t*>(batch.device_copy_.data_ptr());
  batch.state_slots_ = reinterpret_cast<const int32_t*>(base + o_state);
  batch.positions_ = reinterpret_cast<const int64_t*>(base + o_pos);
  batch.ckpt_table_ = reinterpret_cast<const int32_t*>(base + o_table);
  batch.ckpt_counts_ = reinterpret_cast<const int32_t*>(base + o_count);
  batch.closing_state_ = reinterpret_cast<const int32_t*>(base + o_cs);
  batch.closing_dst_ = reinterpret_cast<const int32_t*>(base + o_cd);
  return batch;
}

absl::StatusOr<at::Tensor> DecodeLayer(const McLayerParams& params, const McPools& pools,
                                       int64_t layer, const DecodeBatch& batch,
                                       const DecodeInputs& in, at::Tensor* ckpt_weights) {
  if (!batch.MadeFor(pools)) {
    return absl::InvalidArgumentError("decode batch was made for other pools");
  }
  if (!batch.PlannedFor(params)) {
    return absl::InvalidArgumentError("decode batch was made for another layer shape");
  }
  const int64_t B = batch.size();
  RETURN_IF_ERROR(CheckInputs(params, pools, layer, B, in));
  const at::Device dev = pools.state.device();

  try {
    at::Tensor out = at::empty({B, params.n_heads, ValueDim(params)}, in.q.options());
    LayerPointers lp = Pointers(params, pools, layer, batch, in);
    lp.decode.out = out.data_ptr<float>();
    if (ckpt_weights != nullptr) {
      *ckpt_weights = at::empty({B, batch.table_stride()}, in.q.options());
      lp.decode.ckpt_weight_out = ckpt_weights->data_ptr<float>();
    }
    if (dev.is_cpu()) {
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
        McDecodeCpu(params, lp.decode, static_cast<int32_t>(b0), static_cast<int32_t>(b1));
      });
      McCheckpointCpu(params, lp.checkpoint);
      return out;
    }
#ifdef MCSERVE_HAVE_CUDA
    const c10::DeviceGuard guard(dev);
    RETURN_IF_ERROR(RunCuda(params, dev, batch, lp));
    return out;
#else
    return absl::FailedPreconditionError("built without CUDA kernels");
#endif
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("MC decode layer ", layer, ": ", e.what_without_backtrace()));
  }
}

}  // namespace mcserve::kernels
