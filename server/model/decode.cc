// McModel::DecodeImpl: one token per session through every layer, the MC
// mixer running as the framework-free kernel over the whole batch.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "server/kernels/mc_decode.h"
#include "server/model/mc_model.h"
#include "server/model/mixer_inputs.h"
#include "server/model/ops.h"

namespace mcserve::model {
namespace {

// Host-side index arrays of a decode batch.
struct BatchIndex {
  std::vector<int32_t> state_slots;
  std::vector<int64_t> positions;
  std::vector<int32_t> table;  // [B, max_n], -1 padded
  std::vector<int32_t> counts;
  int64_t max_n = 0;
  std::vector<int32_t> closing_state;  // sessions whose segment closes
  std::vector<int32_t> closing_dst;    // their checkpoint slots (-1: none kept)
};

BatchIndex IndexBatch(absl::Span<const DecodeSeq> batch, int32_t segment_length) {
  BatchIndex ix;
  for (const DecodeSeq& s : batch) {
    ix.max_n = std::max<int64_t>(ix.max_n, static_cast<int64_t>(s.ckpt_slots.size()));
  }
  ix.max_n = std::max<int64_t>(ix.max_n, 1);
  ix.table.assign(batch.size() * ix.max_n, -1);
  for (size_t b = 0; b < batch.size(); ++b) {
    const DecodeSeq& s = batch[b];
    ix.state_slots.push_back(s.state_slot);
    ix.positions.push_back(s.position);
    ix.counts.push_back(static_cast<int32_t>(s.ckpt_slots.size()));
    std::copy(s.ckpt_slots.begin(), s.ckpt_slots.end(), ix.table.begin() + b * ix.max_n);
    if (kernels::ClosesSegment(s.position, segment_length)) {
      ix.closing_state.push_back(s.state_slot);
      ix.closing_dst.push_back(s.new_ckpt_slot);
    }
  }
  return ix;
}

}  // namespace

at::Tensor McModel::DecodeImpl(const CacheTensors& cache, absl::Span<const DecodeSeq> batch,
                               at::Tensor* ckpt_weights) {
  const int64_t B = static_cast<int64_t>(batch.size());
  const int64_t L = config_.n_layers, H = config_.n_heads, d = config_.head_dim;
  const BatchIndex ix = IndexBatch(batch, config_.segment_length);
  std::vector<int64_t> tokens;
  for (const DecodeSeq& s : batch) tokens.push_back(s.token);
  at::Tensor x = weights_.embed.index_select(0, at::tensor(tokens, at::kLong).to(options_.device));

  *ckpt_weights = at::zeros({B, ix.max_n}, at::kFloat);
  at::Tensor layer_weights = at::empty({B, ix.max_n}, at::kFloat);
  const int64_t state_stride = L * H * d * d, sum_stride = L * H * d;
  const int64_t elem = cache.ckpt.element_size();
  for (int64_t l = 0; l < L; ++l) {
    const LayerWeights& lw = weights_.layers[l];
    const MixerInputs m = ProjectMixer(config_, lw, RmsNorm(x, lw.mixer_norm, config_.rms_eps));
    const at::Tensor q = m.q.contiguous(), k = m.k.contiguous(), v = m.v.contiguous();
    const at::Tensor u = m.u.defined() ? m.u.contiguous() : at::Tensor();
    const at::Tensor alpha =
        m.a_logit.defined() ? at::sigmoid(m.a_logit).contiguous() : at::Tensor();
    const at::Tensor beta = m.beta.defined() ? m.beta.contiguous() : at::Tensor();
    at::Tensor out = at::empty({B, H, d}, q.options());

    kernels::McDecodeArgs a;
    a.batch = static_cast<int32_t>(B);
    a.q = q.data_ptr<float>();
    a.k = k.data_ptr<float>();
    a.v = v.data_ptr<float>();
    a.u = u.defined() ? u.data_ptr<float>() : nullptr;
    a.alpha = alpha.defined() ? alpha.data_ptr<float>() : nullptr;
    a.beta = beta.defined() ? beta.data_ptr<float>() : nullptr;
    a.state = cache.state.data_ptr<float>() + l * H * d * d;
    a.state_slot_stride = state_stride;
    a.key_sum = cache.key_sum.data_ptr<float>() + l * H * d;
    a.key_sum_slot_stride = sum_stride;
    a.state_slots = ix.state_slots.data();
    a.positions = ix.positions.data();
    a.ckpt = static_cast<const char*>(cache.ckpt.data_ptr()) + l * H * d * d * elem;
    a.ckpt_slot_stride = state_stride;
    a.summary = cache.ckpt_summary.data_ptr<float>() + l * H * d;
    a.summary_slot_stride = sum_stride;
    a.ckpt_table = ix.table.data();
    a.ckpt_table_stride = ix.max_n;
    a.ckpt_counts = ix.counts.data();
    a.out = out.data_ptr<float>();
    a.ckpt_weight_out = layer_weights.data_ptr<float>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      kernels::McDecodeCpu(params_, a, static_cast<int32_t>(b0), static_cast<int32_t>(b1));
    });
    ckpt_weights->add_(layer_weights, 1.0 / static_cast<double>(L));

    if (!ix.closing_state.empty()) {
      kernels::McCheckpointArgs c;
      c.batch = static_cast<int32_t>(ix.closing_state.size());
      c.state_slots = ix.closing_state.data();
      c.dst_slots = ix.closing_dst.data();
      c.state = a.state;
      c.state_slot_stride = state_stride;
      c.key_sum = a.key_sum;
      c.key_sum_slot_stride = sum_stride;
      c.ckpt = static_cast<char*>(cache.ckpt.data_ptr()) + l * H * d * d * elem;
      c.ckpt_slot_stride = state_stride;
      c.summary = cache.ckpt_summary.data_ptr<float>() + l * H * d;
      c.summary_slot_stride = sum_stride;
      kernels::McCheckpointCpu(params_, c);
    }
    x = x + MixerOut(lw, out, m.g);
    x = x + SwiGlu(RmsNorm(x, lw.mlp_norm, config_.rms_eps), lw.gate_up, lw.down);
  }
  return Logits(x);
}

}  // namespace mcserve::model
