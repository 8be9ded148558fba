// McModel::DecodeImpl: one token per session through every layer, the MC
// mixer running as the framework-free kernel over the whole batch.
#include <algorithm>
#include <vector>

#include "server/kernels/mc_decode_op.h"
#include "server/model/fla_mixer.h"
#include "server/model/mc_model.h"
#include "server/model/mixer_inputs.h"
#include "server/model/ops.h"
#include "server/util/status_macros.h"

namespace mcserve::model {
namespace {

// The step's slot tables, on the host (validated and moved to the device by
// DecodeBatch::Create).
kernels::DecodeIndex IndexBatch(absl::Span<const DecodeSeq> batch, int32_t segment_length) {
  kernels::DecodeIndex ix;
  int64_t max_n = 1;
  for (const DecodeSeq& s : batch) {
    max_n = std::max<int64_t>(max_n, static_cast<int64_t>(s.ckpt_slots.size()));
  }
  ix.table_stride = max_n;
  ix.ckpt_table.assign(batch.size() * max_n, -1);
  for (size_t b = 0; b < batch.size(); ++b) {
    const DecodeSeq& s = batch[b];
    ix.state_slots.push_back(s.state_slot);
    ix.positions.push_back(s.position);
    ix.ckpt_counts.push_back(static_cast<int32_t>(s.ckpt_slots.size()));
    std::copy(s.ckpt_slots.begin(), s.ckpt_slots.end(), ix.ckpt_table.begin() + b * max_n);
    if (kernels::ClosesSegment(s.position, segment_length)) {
      ix.closing_state_slots.push_back(s.state_slot);
      ix.closing_dst_slots.push_back(s.new_ckpt_slot);
    }
  }
  return ix;
}

}  // namespace

absl::StatusOr<at::Tensor> McModel::DecodeImpl(const CacheTensors& cache,
                                               absl::Span<const DecodeSeq> batch,
                                               at::Tensor* ckpt_weights) {
  if (config_.is_deep()) return DeepDecodeImpl(cache, batch, ckpt_weights);
  const int64_t L = config_.n_layers;
  const kernels::McPools pools{cache.online[kMemory], cache.online[kKeySum], cache.ckpt,
                               cache.ckpt_summary};
  ASSIGN_OR_RETURN(
      const kernels::DecodeBatch ix,
      kernels::DecodeBatch::Create(params_, pools, IndexBatch(batch, config_.segment_length)));
  std::vector<int64_t> tokens, slots;
  for (const DecodeSeq& s : batch) {
    tokens.push_back(s.token);
    slots.push_back(s.state_slot);
  }
  at::Tensor x = weights_.embed.index_select(0, at::tensor(tokens, at::kLong).to(options_.device));
  at::Tensor slot_index;  // fla convolution caches are gathered and scattered by slot
  if (has_conv()) slot_index = at::tensor(slots, at::kLong).to(options_.device);

  at::Tensor weights_sum;  // gate weight per checkpoint, summed over layers
  for (int64_t l = 0; l < L; ++l) {
    const LayerWeights& lw = weights_.layers[l];
    const at::Tensor z = RmsNorm(x, lw.mixer_norm, config_.rms_eps);
    const MixerInputs m =
        !config_.is_fla()
            ? ProjectMixer(config_, lw, z)
            : ProjectFlaDecode(config_, lw, z,
                               has_conv() ? cache.online[kConv].select(1, l) : at::Tensor(),
                               slot_index);
    kernels::DecodeInputs in;
    in.q = m.q.contiguous();
    in.k = m.k.contiguous();
    in.v = m.v.contiguous();
    if (m.u.defined()) in.u = m.u.contiguous();
    if (m.a_logit.defined()) in.alpha = at::sigmoid(m.a_logit).contiguous();
    if (m.log_alpha.defined()) in.alpha = at::exp(m.log_alpha).contiguous();
    if (m.beta.defined()) in.beta = m.beta.contiguous();
    at::Tensor layer_weights;
    ASSIGN_OR_RETURN(const at::Tensor out,
                     kernels::DecodeLayer(params_, pools, l, ix, in, &layer_weights));
    weights_sum = weights_sum.defined() ? weights_sum + layer_weights : layer_weights;
    x = x + MixerOut(lw, out, m.g);
    x = x + SwiGlu(RmsNorm(x, lw.mlp_norm, config_.rms_eps), lw.gate_up, lw.down);
  }
  *ckpt_weights = (weights_sum / static_cast<double>(L)).to(at::kCPU);
  return Logits(x);
}

// Deep memory: the mixer runs on LibTorch tensors (deep_mixer.h).
absl::StatusOr<at::Tensor> McModel::DeepDecodeImpl(const CacheTensors& cache,
                                                   absl::Span<const DecodeSeq> batch,
                                                   at::Tensor* ckpt_weights) {
  std::vector<DeepDecodeSeq> seqs;
  std::vector<int64_t> tokens;
  for (const DecodeSeq& s : batch) {
    seqs.push_back(
        {s.position, s.state_slot, {s.ckpt_slots.begin(), s.ckpt_slots.end()}, s.new_ckpt_slot});
    tokens.push_back(s.token);
  }
  const DeepDecodeIndex ix = IndexDeepDecode(config_, seqs, options_.device);
  at::Tensor x = weights_.embed.index_select(0, at::tensor(tokens, at::kLong).to(options_.device));
  at::Tensor weights_sum;
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    const LayerWeights& lw = weights_.layers[l];
    const MixerInputs m = ProjectMixer(config_, lw, RmsNorm(x, lw.mixer_norm, config_.rms_eps));
    at::Tensor layer_weights;
    const at::Tensor o =
        DeepDecodeLayer(config_, lw, DeepLayerPools(cache, l), ix, m, &layer_weights);
    weights_sum = weights_sum.defined() ? weights_sum + layer_weights : layer_weights;
    x = x + MixerOut(lw, o, m.g);
    x = x + SwiGlu(RmsNorm(x, lw.mlp_norm, config_.rms_eps), lw.gate_up, lw.down);
  }
  *ckpt_weights = (weights_sum / static_cast<double>(config_.n_layers)).to(at::kCPU);
  return Logits(x);
}

}  // namespace mcserve::model
