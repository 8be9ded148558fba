#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "server/kernels/bf16.h"
#include "server/kernels/mc_decode.h"
#include "server/kernels/mc_gates.h"

namespace mcserve::kernels {
namespace {

// Applies one token to S (dk x dv) in place (mc-model.md §4).
void UpdateState(const McLayerParams& p, float* s, const float* k, const float* v, float alpha,
                 float beta, float* scratch) {
  const int32_t dk = p.head_dim, dv = ValueDim(p);
  if (p.rule == MemoryRule::kDelta) {
    // kts[j] = (k^T S)[j]; S <- alpha * (S - beta k kts^T) + beta k v^T
    float* kts = scratch;
    std::fill(kts, kts + dv, 0.0f);
    for (int32_t i = 0; i < dk; ++i) {
      const float ki = k[i];
      const float* row = s + i * dv;
      for (int32_t j = 0; j < dv; ++j) kts[j] += ki * row[j];
    }
    for (int32_t i = 0; i < dk; ++i) {
      const float bk = beta * k[i];
      float* row = s + i * dv;
      for (int32_t j = 0; j < dv; ++j) {
        row[j] = alpha * (row[j] - bk * kts[j]) + bk * v[j];
      }
    }
    return;
  }
  for (int32_t i = 0; i < dk; ++i) {
    const float ki = k[i];
    float* row = s + i * dv;
    for (int32_t j = 0; j < dv; ++j) row[j] = alpha * row[j] + ki * v[j];
  }
}

// out[j] += w * sum_i M[i][j] q[i], M (dk x dv) stored as T.
template <typename T>
void AddRead(const T* m, const float* q, float w, int32_t dk, int32_t dv, float* out) {
  for (int32_t i = 0; i < dk; ++i) {
    const float wq = w * q[i];
    const T* row = m + i * dv;
    for (int32_t j = 0; j < dv; ++j) {
      if constexpr (std::is_same_v<T, uint16_t>) {
        out[j] += wq * Bf16ToFloat(row[j]);
      } else {
        out[j] += wq * row[j];
      }
    }
  }
}

void AddCheckpointRead(const McLayerParams& p, const McDecodeArgs& a, int32_t slot, int32_t h,
                       const float* q, float w, float* out) {
  const int32_t dk = p.head_dim, dv = ValueDim(p);
  const int64_t off = slot * a.ckpt_slot_stride + int64_t{h} * dk * dv;
  if (p.ckpt_dtype == CkptDtype::kBFloat16) {
    AddRead(static_cast<const uint16_t*>(a.ckpt) + off, q, w, dk, dv, out);
  } else {
    AddRead(static_cast<const float*>(a.ckpt) + off, q, w, dk, dv, out);
  }
}

float Dot(const float* x, const float* y, int32_t d) {
  float acc = 0.0f;
  for (int32_t i = 0; i < d; ++i) acc += x[i] * y[i];
  return acc;
}

// Per-thread scratch sized for one row.
struct Scratch {
  std::vector<float> vec;      // dv
  std::vector<float> z;        // n
  std::vector<int32_t> order;  // n
  std::vector<char> selected;  // n (bool storage)
};

void SelectTopK(const McLayerParams& p, int32_t n, Scratch& sc) {
  auto* sel = reinterpret_cast<bool*>(sc.selected.data());
  if (p.aggregation != Aggregation::kSsc) return;
  if (n <= p.top_k) {
    std::fill(sel, sel + n, true);
    return;
  }
  std::iota(sc.order.begin(), sc.order.begin() + n, 0);
  const float* z = sc.z.data();
  std::partial_sort(sc.order.begin(), sc.order.begin() + p.top_k, sc.order.begin() + n,
                    [z](int32_t a, int32_t b) { return SscBetter(z, a, b); });
  std::fill(sel, sel + n, false);
  for (int32_t r = 0; r < p.top_k; ++r) sel[sc.order[r]] = true;
}

void DecodeHead(const McLayerParams& p, const McDecodeArgs& a, int32_t b, int32_t h, Scratch& sc) {
  const int32_t H = p.n_heads, d = p.head_dim, dv = ValueDim(p);
  const int64_t row = (int64_t{b} * H + h) * d;
  const int64_t vrow = (int64_t{b} * H + h) * dv;
  const int32_t slot = a.state_slots[b];
  float* s = a.state + slot * a.state_slot_stride + int64_t{h} * d * dv;
  float* ks = a.key_sum + slot * a.key_sum_slot_stride + int64_t{h} * d;
  const float* q = a.q + row;
  const float* k = a.k + row;
  const float alpha = p.scalar_decay ? a.alpha[b * H + h] : 1.0f;
  const float beta = p.rule == MemoryRule::kDelta ? a.beta[b * H + h] : 1.0f;

  UpdateState(p, s, k, a.v + vrow, alpha, beta, sc.vec.data());
  for (int32_t i = 0; i < d; ++i) ks[i] += k[i];

  float* out = a.out + vrow;
  std::fill(out, out + dv, 0.0f);
  const int32_t n = KeepsCheckpoints(p.aggregation) ? a.ckpt_counts[b] : 0;
  const int32_t* table = a.ckpt_table + b * a.ckpt_table_stride;
  float z_on = 0.0f;
  if (a.u != nullptr) {
    const float* u = a.u + row;
    const int64_t count = a.positions[b] % p.segment_length + 1;
    z_on = p.gate_scale * Dot(u, ks, d) / static_cast<float>(count);
    for (int32_t i = 0; i < n; ++i) {
      const float* sum = a.summary + table[i] * a.summary_slot_stride + int64_t{h} * d;
      sc.z[i] = p.gate_scale * Dot(u, sum, d);
    }
  }
  SelectTopK(p, n, sc);
  float w_on = 1.0f;
  AggregationWeights(p, n, z_on, sc.z.data(), &w_on,
                     reinterpret_cast<const bool*>(sc.selected.data()));
  AddRead(static_cast<const float*>(s), q, w_on, d, dv, out);
  for (int32_t i = 0; i < n; ++i) {
    if (sc.z[i] != 0.0f) AddCheckpointRead(p, a, table[i], h, q, sc.z[i], out);
    if (a.ckpt_weight_out != nullptr) {
      a.ckpt_weight_out[b * a.ckpt_table_stride + i] += sc.z[i] / static_cast<float>(H);
    }
  }
}

}  // namespace

void McDecodeCpu(const McLayerParams& p, const McDecodeArgs& a, int32_t b_begin, int32_t b_end) {
  Scratch sc;
  sc.vec.resize(ValueDim(p));
  for (int32_t b = b_begin; b < b_end; ++b) {
    if (a.ckpt_weight_out != nullptr) {
      std::fill(a.ckpt_weight_out + b * a.ckpt_table_stride,
                a.ckpt_weight_out + (b + 1) * a.ckpt_table_stride, 0.0f);
    }
    if (a.state_slots[b] < 0) {
      const int64_t row = int64_t{b} * p.n_heads * ValueDim(p);
      std::fill(a.out + row, a.out + row + int64_t{p.n_heads} * ValueDim(p), 0.0f);
      continue;
    }
    const int32_t n = KeepsCheckpoints(p.aggregation) ? a.ckpt_counts[b] : 0;
    if (static_cast<int32_t>(sc.z.size()) < n) {
      sc.z.resize(n);
      sc.order.resize(n);
      sc.selected.resize(n);
    }
    for (int32_t h = 0; h < p.n_heads; ++h) DecodeHead(p, a, b, h, sc);
  }
}

void McCheckpointCpu(const McLayerParams& p, const McCheckpointArgs& a) {
  const int64_t dd = int64_t{p.head_dim} * ValueDim(p);
  const int64_t state_elems = p.n_heads * dd;
  const int64_t sum_elems = int64_t{p.n_heads} * p.head_dim;
  const float c_len = static_cast<float>(p.segment_length);
  for (int32_t b = 0; b < a.batch; ++b) {
    const int32_t dst = a.dst_slots[b];
    const int32_t slot = a.state_slots[b];
    if (slot < 0) continue;
    float* s = a.state + slot * a.state_slot_stride;
    float* ks = a.key_sum + slot * a.key_sum_slot_stride;
    if (dst >= 0) {
      if (p.ckpt_dtype == CkptDtype::kBFloat16) {
        uint16_t* c = static_cast<uint16_t*>(a.ckpt) + dst * a.ckpt_slot_stride;
        for (int64_t e = 0; e < state_elems; ++e) c[e] = FloatToBf16(s[e]);
      } else {
        float* c = static_cast<float*>(a.ckpt) + dst * a.ckpt_slot_stride;
        std::memcpy(c, s, state_elems * sizeof(float));
      }
      float* sum = a.summary + dst * a.summary_slot_stride;
      for (int64_t e = 0; e < sum_elems; ++e) sum[e] = ks[e] / c_len;
    }
    std::fill(ks, ks + sum_elems, 0.0f);
    if (p.boundary == Boundary::kReset) std::fill(s, s + state_elems, 0.0f);
  }
}

}  // namespace mcserve::kernels
