#include "server/model/deep_mixer.h"

#include <algorithm>
#include <limits>

#include "server/model/deep_memory.h"

namespace mcserve::model {
namespace {

using kernels::Aggregation;

// The rows a token leaves in the open chunk: k, v, theta, decay and momentum
// logits. [N, H, 2d+3].
at::Tensor ChunkRows(const MixerInputs& m) {
  const at::Tensor zero = at::zeros_like(m.beta);
  return at::cat(
      {m.k, m.v, m.beta.unsqueeze(-1), (m.a_logit.defined() ? m.a_logit : zero).unsqueeze(-1),
       (m.m_logit.defined() ? m.m_logit : zero).unsqueeze(-1)},
      -1);
}

// Writes one chunk from its rows [..., b, H, 2d+3] into the memory w
// [..., H, 2hid, d] (and the momentum *sigma); returns the new memory.
at::Tensor WriteChunk(const ModelConfig& c, const LayerWeights& lw, const at::Tensor& w,
                      const at::Tensor& rows, at::Tensor* sigma) {
  const int64_t d = c.head_dim;
  const at::Tensor r = rows.transpose(-3, -2);  // [..., H, b, 2d+3]
  const at::Tensor k = r.narrow(-1, 0, d), v = r.narrow(-1, d, d);
  const at::Tensor theta = r.select(-1, 2 * d);
  const at::Tensor g = DeepGradient(w, lw.mem_ln, k, v, theta, c.deep_hidden());
  at::Tensor rho, eta;
  if (c.scalar_decay) rho = at::sigmoid(r.select(-1, 2 * d + 1).mean(-1));
  if (c.deep.momentum) eta = at::sigmoid(r.select(-1, 2 * d + 2).mean(-1));
  return DeepWrite(c.deep, w, g, rho, eta, sigma, c.deep_hidden());
}

// Gate weights of the aggregation: w_on [..., H] for the online memory and
// w [..., n, H] for the checkpoints (undefined when there are none), from
// the logits z_on [..., H] and z [..., n, H]; `valid` [..., n] marks real
// checkpoints (padding gets weight 0).
void GateWeights(const ModelConfig& c, const at::Tensor& z_on, const at::Tensor& z,
                 const at::Tensor& valid, at::Tensor* w_on, at::Tensor* w) {
  const at::Tensor vmask = valid.defined() ? valid.unsqueeze(-1) : at::Tensor();  // [..., n, 1]
  switch (c.aggregation) {
    case Aggregation::kNone:
      *w_on = at::ones_like(z_on);
      return;
    case Aggregation::kResidual:
      *w_on = at::ones_like(z_on);
      if (z.defined()) *w = vmask.to(z.scalar_type()).expand_as(z);
      return;
    case Aggregation::kMean: {
      if (!z.defined()) {
        *w_on = at::ones_like(z_on);
        return;
      }
      const at::Tensor inv = 1.0 / (1.0 + vmask.to(z.scalar_type()).sum(-2));  // [..., 1]
      *w_on = inv.expand_as(z_on);
      *w = vmask.to(z.scalar_type()) * inv.unsqueeze(-2);
      *w = w->expand_as(z);
      return;
    }
    case Aggregation::kGrm:
    case Aggregation::kSoup:
    case Aggregation::kSsc:
      break;
  }
  if (!z.defined()) {
    *w_on = at::ones_like(z_on);
    return;
  }
  at::Tensor keep = vmask.expand_as(z);  // [..., n, H]
  if (c.aggregation == Aggregation::kSsc) {
    // Checkpoint i is selected when fewer than top_k valid checkpoints beat
    // it; a tie goes to the more recent (larger index).
    const int64_t n = z.size(-2);
    const at::Tensor zi = z.unsqueeze(-2), zj = z.unsqueeze(-3);  // [..., n, 1, H], [..., 1, n, H]
    const at::Tensor idx = at::arange(n, z.options().dtype(at::kLong));
    const at::Tensor later =
        (idx.unsqueeze(0) > idx.unsqueeze(1)).unsqueeze(-1);  // [n(i), n(j), 1]
    const at::Tensor beats = (zj > zi) | ((zj == zi) & later);
    const at::Tensor better = (beats & vmask.unsqueeze(-3)).sum(-2);  // [..., n, H]
    keep = keep & (better < c.top_k);
  }
  const at::Tensor masked = z.masked_fill(~keep, -std::numeric_limits<float>::infinity());
  const at::Tensor g = at::softmax(at::cat({z_on.unsqueeze(-2), masked}, -2), -2);
  *w_on = g.select(-2, 0);
  *w = g.narrow(-2, 1, z.size(-2));
}

// The online memory's read for aggregations that mix reads; soup mixes the
// memories first. w [.., H, 2hid, d], rows q [..., H, t, d].
at::Tensor MixedSoup(const at::Tensor& w_on, const at::Tensor& mem, const at::Tensor& ck_mix) {
  at::Tensor bar = w_on.unsqueeze(-1).unsqueeze(-1) * mem;
  if (ck_mix.defined()) bar = bar + ck_mix;
  return bar;
}

}  // namespace

DeepDecodeIndex IndexDeepDecode(const ModelConfig& c, const std::vector<DeepDecodeSeq>& batch,
                                const at::Device& device) {
  DeepDecodeIndex ix;
  ix.batch = static_cast<int64_t>(batch.size());
  for (const DeepDecodeSeq& s : batch) {
    ix.max_n = std::max<int64_t>(ix.max_n, static_cast<int64_t>(s.ckpt_slots.size()));
  }
  std::vector<int64_t> slots, in_chunk, table(ix.batch * ix.max_n, 0), chunk_rows, seg_rows,
      kept_rows, kept_dst;
  std::vector<float> count;
  std::vector<uint8_t> valid(ix.batch * ix.max_n, 0);
  for (int64_t b = 0; b < ix.batch; ++b) {
    const DeepDecodeSeq& s = batch[b];
    slots.push_back(s.state_slot);
    in_chunk.push_back(s.position % c.deep.chunk);
    count.push_back(static_cast<float>(s.position % c.segment_length + 1));
    for (size_t i = 0; i < s.ckpt_slots.size(); ++i) {
      table[b * ix.max_n + i] = s.ckpt_slots[i];
      valid[b * ix.max_n + i] = 1;
    }
    if ((s.position + 1) % c.deep.chunk == 0) chunk_rows.push_back(b);
    if ((s.position + 1) % c.segment_length == 0) {
      seg_rows.push_back(b);
      if (s.new_ckpt_slot >= 0) {
        kept_rows.push_back(b);
        kept_dst.push_back(s.new_ckpt_slot);
      }
    }
  }
  auto longs = [&device](const std::vector<int64_t>& v) {
    return at::tensor(v, at::kLong).to(device);
  };
  ix.slots = longs(slots);
  ix.row_in_chunk = longs(in_chunk);
  ix.seg_count = at::tensor(count, at::kFloat).to(device).view({-1, 1, 1});
  ix.ckpt_slots = longs(table);
  ix.ckpt_valid = at::tensor(valid, at::kByte).to(device).to(at::kBool).view({ix.batch, ix.max_n});
  ix.chunk_rows = longs(chunk_rows);
  ix.seg_rows = longs(seg_rows);
  ix.kept_rows = longs(kept_rows);
  ix.kept_dst = longs(kept_dst);
  return ix;
}

at::Tensor DeepDecodeLayer(const ModelConfig& c, const LayerWeights& lw, const DeepPools& p,
                           const DeepDecodeIndex& ix, const MixerInputs& m,
                           at::Tensor* ckpt_weights) {
  const int64_t B = ix.batch, H = c.n_heads, d = c.head_dim, hid = c.deep_hidden();
  const int64_t n = ix.max_n;
  // The token joins its chunk; a chunk's last token writes the memory.
  p.rows.index_put_({ix.slots, ix.row_in_chunk}, ChunkRows(m));
  at::Tensor w = p.memory.index_select(0, ix.slots);  // [B, H, 2hid, d]
  if (ix.chunk_rows.numel() > 0) {
    const at::Tensor cs = ix.slots.index_select(0, ix.chunk_rows);
    at::Tensor sigma;
    if (p.momentum.defined()) sigma = p.momentum.index_select(0, cs);
    const at::Tensor wn =
        WriteChunk(c, lw, w.index_select(0, ix.chunk_rows), p.rows.index_select(0, cs), &sigma);
    w.index_copy_(0, ix.chunk_rows, wn);
    p.memory.index_copy_(0, cs, wn);
    if (p.momentum.defined()) p.momentum.index_copy_(0, cs, sigma);
  }
  // Gate logits against the open segment's mean key and the summaries.
  at::Tensor ks = p.key_sum.index_select(0, ix.slots) + m.k;  // [B, H, d]
  at::Tensor w_on, wck, ck, z;
  at::Tensor z_on;
  if (c.HasGate())
    z_on = c.gate_scale * (m.u * (ks / ix.seg_count)).sum(-1);  // [B, H]
  else
    z_on = at::zeros({B, H}, m.q.options());
  if (n > 0) {
    ck = p.ckpt.index_select(0, ix.ckpt_slots).to(at::kFloat).view({B, n, H, 2 * hid, d});
    if (c.HasGate()) {
      const at::Tensor summ = p.ckpt_summary.index_select(0, ix.ckpt_slots).view({B, n, H, d});
      z = c.gate_scale * (m.u.unsqueeze(1) * summ).sum(-1);  // [B, n, H]
    } else {
      z = at::zeros({B, n, H}, m.q.options());
    }
  }
  GateWeights(c, z_on, z, n > 0 ? ix.ckpt_valid : at::Tensor(), &w_on, &wck);
  const at::Tensor x = m.q.unsqueeze(-2);  // [B, H, 1, d]
  at::Tensor o;
  if (c.aggregation == Aggregation::kSoup) {
    at::Tensor mix;
    if (n > 0) mix = (wck.unsqueeze(-1).unsqueeze(-1) * ck).sum(1);  // [B, H, 2hid, d]
    o = DeepRead(MixedSoup(w_on, w, mix), lw.mem_ln, x, hid).squeeze(-2);
  } else {
    o = w_on.unsqueeze(-1) * DeepRead(w, lw.mem_ln, x, hid).squeeze(-2);
    if (n > 0) {
      const at::Tensor r = DeepRead(ck, lw.mem_ln, x.unsqueeze(1), hid).squeeze(-2);  // [B,n,H,d]
      o = o + (wck.unsqueeze(-1) * r).sum(1);
    }
  }
  *ckpt_weights = n > 0 ? wck.mean(-1) : at::zeros({B, 0}, m.q.options());
  // Segment ends: the memory becomes a checkpoint; the key sum restarts.
  if (ix.seg_rows.numel() > 0) {
    const at::Tensor ss = ix.slots.index_select(0, ix.seg_rows);
    if (ix.kept_rows.numel() > 0) {
      p.ckpt.index_copy_(0, ix.kept_dst, w.index_select(0, ix.kept_rows).to(p.ckpt.scalar_type()));
      p.ckpt_summary.index_copy_(
          0, ix.kept_dst, ks.index_select(0, ix.kept_rows) / static_cast<double>(c.segment_length));
    }
    ks.index_fill_(0, ix.seg_rows, 0.0);
    if (c.boundary == kernels::Boundary::kReset) {
      const int64_t r = ss.size(0);
      p.memory.index_copy_(0, ss, lw.mem_init.unsqueeze(0).expand({r, H, 2 * hid, d}).contiguous());
      if (p.momentum.defined()) p.momentum.index_fill_(0, ss, 0.0);
    }
  }
  p.key_sum.index_copy_(0, ix.slots, ks);
  return o;
}

at::Tensor DeepPrefillLayer(const ModelConfig& c, const LayerWeights& lw, const DeepPools& p,
                            int32_t state_slot, int64_t position, const at::Tensor& ckpt_slots,
                            int32_t new_ckpt_slot, const MixerInputs& m) {
  const int64_t T = m.q.size(0), H = c.n_heads, d = c.head_dim, hid = c.deep_hidden();
  const int64_t b = c.deep.chunk, seg = c.segment_length;
  const int64_t n = ckpt_slots.defined() ? ckpt_slots.numel() : 0;
  const at::TensorOptions f = m.q.options();

  // Gate weights of every token (they do not depend on the memory).
  const at::Tensor ks0 = p.key_sum[state_slot];
  const at::Tensor cum = ks0 + m.k.cumsum(0);  // [T, H, d]
  const at::Tensor count =
      at::arange(1, T + 1, f).add_(static_cast<double>(position % seg)).view({T, 1, 1});
  at::Tensor z_on = at::zeros({T, H}, f), z, ck, w_on, wck;
  if (c.HasGate()) z_on = c.gate_scale * (m.u * (cum / count)).sum(-1);
  if (n > 0) {
    ck = p.ckpt.index_select(0, ckpt_slots).to(at::kFloat);  // [n, H, 2hid, d]
    if (c.HasGate()) {
      const at::Tensor summ = p.ckpt_summary.index_select(0, ckpt_slots);  // [n, H, d]
      z = c.gate_scale * (m.u.unsqueeze(1) * summ.unsqueeze(0)).sum(-1);   // [T, n, H]
    } else {
      z = at::zeros({T, n, H}, f);
    }
  }
  GateWeights(c, z_on, z, n > 0 ? at::ones({T, n}, f.dtype(at::kBool)) : at::Tensor(), &w_on, &wck);
  const bool soup = c.aggregation == Aggregation::kSoup;
  at::Tensor ck_mix;  // soup: sum_i w_i W_i per token [T, H, 2hid, d]
  if (soup && n > 0) ck_mix = at::einsum("tnh,nhrd->thrd", {wck, ck});

  // The online memory, chunk by chunk: a token reads the memory as of its
  // chunk's start, except a chunk's last token, which writes first.
  at::Tensor w = p.memory[state_slot].clone();  // [H, 2hid, d]
  at::Tensor sigma;
  if (p.momentum.defined()) sigma = p.momentum[state_slot].clone();
  const at::Tensor rows = ChunkRows(m);      // [T, H, 2d+3]
  const at::Tensor q = m.q.transpose(0, 1);  // [H, T, d]
  std::vector<at::Tensor> reads;             // [H, t, d] pieces in token order
  auto read = [&](int64_t from, int64_t to) {
    if (to <= from) return;
    if (soup) {
      const at::Tensor bar = MixedSoup(w_on.narrow(0, from, to - from), w.unsqueeze(0),
                                       n > 0 ? ck_mix.narrow(0, from, to - from) : at::Tensor());
      const at::Tensor x = m.q.narrow(0, from, to - from).unsqueeze(-2);  // [t, H, 1, d]
      reads.push_back(DeepRead(bar, lw.mem_ln, x, hid).squeeze(-2).transpose(0, 1));
    } else {
      reads.push_back(DeepRead(w, lw.mem_ln, q.narrow(1, from, to - from), hid));
    }
  };
  for (int64_t t = 0; t < T;) {
    const int64_t in_chunk = (position + t) % b;
    const int64_t e = std::min(T, t + (b - in_chunk));
    const bool closes = (position + e) % b == 0;
    p.rows[state_slot].narrow(0, in_chunk, e - t).copy_(rows.narrow(0, t, e - t));
    read(t, closes ? e - 1 : e);
    if (closes) {
      w = WriteChunk(c, lw, w, p.rows[state_slot], &sigma);
      read(e - 1, e);
    }
    t = e;
  }
  const at::Tensor r_on = at::cat(reads, 1).transpose(0, 1);  // [T, H, d]
  at::Tensor o;
  if (soup) {
    o = r_on;
  } else {
    o = w_on.unsqueeze(-1) * r_on;
    if (n > 0) {
      // Every checkpoint read by every token at once: [n, H, T, d].
      const at::Tensor r = DeepRead(ck, lw.mem_ln, q.unsqueeze(0).expand({n, H, T, d}), hid);
      o = o + (wck.unsqueeze(-1) * r.permute({2, 0, 1, 3})).sum(1);
    }
  }

  at::Tensor ks = cum[T - 1];
  if ((position + T) % seg == 0) {
    if (new_ckpt_slot >= 0) {
      p.ckpt[new_ckpt_slot].copy_(w.to(p.ckpt.scalar_type()));
      p.ckpt_summary[new_ckpt_slot].copy_(ks / static_cast<double>(seg));
    }
    ks = at::zeros_like(ks);
    if (c.boundary == kernels::Boundary::kReset) {
      w = lw.mem_init;
      if (sigma.defined()) sigma = at::zeros_like(sigma);
    }
  }
  p.key_sum[state_slot].copy_(ks);
  p.memory[state_slot].copy_(w);
  if (sigma.defined()) p.momentum[state_slot].copy_(sigma);
  return o;
}

}  // namespace mcserve::model
