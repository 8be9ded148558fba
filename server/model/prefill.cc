// McModel::PrefillPiece: a run of tokens of one session through every layer
// in parallel form: inside one segment (chunk_mixer.h), or across segments
// (span_mixer.h) when the model's pieces span them.
#include <vector>

#include "server/model/chunk_mixer.h"
#include "server/model/fla_mixer.h"
#include "server/model/mc_model.h"
#include "server/model/mixer_inputs.h"
#include "server/model/ops.h"
#include "server/model/span_mixer.h"

namespace mcserve::model {
namespace {

// [N, H, ...] -> [H, N, ...]
at::Tensor HeadsFirst(const at::Tensor& t) { return t.transpose(0, 1); }

}  // namespace

at::Tensor McModel::PrefillPiece(const CacheTensors& cache, const PrefillSeq& seq, int64_t begin,
                                 int64_t end, int64_t n_ckpt, absl::Span<const int32_t> new_slots) {
  const int64_t c = config_.segment_length;
  const int64_t pos0 = seq.position + begin;
  const bool closes = (seq.position + end) % c == 0;
  const bool spans = spans_segments();
  const int32_t new_slot = !spans && !new_slots.empty() ? new_slots[0] : -1;
  std::vector<int64_t> tokens(seq.tokens.begin() + begin, seq.tokens.begin() + end);
  const at::Device dev = options_.device;
  at::Tensor x = weights_.embed.index_select(0, at::tensor(tokens, at::kLong).to(dev));

  // Checkpoints readable in this piece: the session's, then those closed by
  // earlier pieces of this prefill.
  std::vector<int64_t> slots(seq.ckpt_slots.begin(), seq.ckpt_slots.end());
  slots.insert(slots.end(), seq.new_ckpt_slots.begin(), seq.new_ckpt_slots.end());
  slots.resize(n_ckpt);
  at::Tensor all_ckpt, all_summary;
  if (n_ckpt > 0 && kernels::KeepsCheckpoints(config_.aggregation) && !config_.is_deep()) {
    const at::Tensor idx = at::tensor(slots, at::kLong).to(dev);
    all_ckpt = cache.ckpt.index_select(0, idx);             // [n, L, H, d, d]
    all_summary = cache.ckpt_summary.index_select(0, idx);  // [n, L, H, d]
  }

  for (int64_t l = 0; l < config_.n_layers; ++l) {
    const LayerWeights& lw = weights_.layers[l];
    const at::Tensor z = RmsNorm(x, lw.mixer_norm, config_.rms_eps);
    const MixerInputs m =
        !config_.is_fla()
            ? ProjectMixer(config_, lw, z)
            : ProjectFlaPrefill(config_, lw, z,
                                has_conv() ? cache.online[kConv][seq.state_slot][l] : at::Tensor());
    if (config_.is_deep()) {
      at::Tensor ckpt_index;
      if (n_ckpt > 0) ckpt_index = at::tensor(slots, at::kLong).to(dev);
      const at::Tensor o = DeepPrefillLayer(config_, lw, DeepLayerPools(cache, l), seq.state_slot,
                                            pos0, ckpt_index, new_slot, m);
      x = x + MixerOut(lw, o, m.g);
      x = x + SwiGlu(RmsNorm(x, lw.mlp_norm, config_.rms_eps), lw.gate_up, lw.down);
      continue;
    }
    at::Tensor s = cache.online[kMemory][seq.state_slot][l];   // [H, d, d] view
    at::Tensor ks = cache.online[kKeySum][seq.state_slot][l];  // [H, d] view
    SpanMixerInputs in;
    in.q = HeadsFirst(m.q);
    in.k = HeadsFirst(m.k);
    in.v = HeadsFirst(m.v);
    if (m.u.defined()) in.u = HeadsFirst(m.u);
    if (m.a_logit.defined()) in.log_alpha = at::log_sigmoid(m.a_logit).t();
    if (m.log_alpha.defined()) in.log_alpha = m.log_alpha.t();
    if (m.beta.defined()) in.beta = m.beta.t();
    in.s0 = s;
    in.ks0 = ks;
    in.count0 = pos0 % c;
    if (all_ckpt.defined()) {
      in.ckpt = all_ckpt.select(1, l).to(at::kFloat).transpose(0, 1);  // [H, n, d, d]
      in.ckpt_summary = all_summary.select(1, l).transpose(0, 1);      // [H, n, d]
    }
    at::Tensor o;  // [H, T, dv]
    if (spans) {
      const SpanMixerOutputs out = SpanMixer(params_, in);
      for (size_t j = 0; j < new_slots.size(); ++j) {
        cache.ckpt[new_slots[j]][l].copy_(out.closed_ckpt[j].to(cache.ckpt.scalar_type()));
        cache.ckpt_summary[new_slots[j]][l].copy_(out.closed_summary[j]);
      }
      s.copy_(out.s_end);
      ks.copy_(out.ks_end);
      o = out.o;
    } else {
      const ChunkMixerOutputs out = ChunkMixer(params_, in);
      s.copy_(out.s_end);
      ks.copy_(out.ks_end);
      if (closes) {
        if (new_slot >= 0) {
          cache.ckpt[new_slot][l].copy_(out.s_end.to(cache.ckpt.scalar_type()));
          cache.ckpt_summary[new_slot][l].copy_(out.ks_end / static_cast<double>(c));
        }
        ks.zero_();
        if (config_.boundary == Boundary::kReset) s.zero_();
      }
      o = out.o;
    }
    x = x + MixerOut(lw, HeadsFirst(o), m.g);
    x = x + SwiGlu(RmsNorm(x, lw.mlp_norm, config_.rms_eps), lw.gate_up, lw.down);
  }
  return seq.want_logits ? Logits(x) : at::Tensor();
}

}  // namespace mcserve::model
