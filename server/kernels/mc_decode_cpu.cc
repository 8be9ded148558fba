#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "server/kernels/bf16.h"
#include "server/kernels/cpu_clones.h"
#include "server/kernels/mc_decode.h"
#include "server/kernels/mc_gates.h"

namespace mcserve::kernels {
namespace {

// Applies one token to S (dk x dv) in place (mc-model.md §4).
MCSERVE_HOT void UpdateState(const McLayerParams& p, float* __restrict s, const float* __restrict k,
                             const float* __restrict v, float alpha, float beta,
                             float* __restrict scratch) {
  const int32_t dk = p.head_dim, dv = ValueDim(p);
  if (p.rule == MemoryRule::kDelta) {
    // kts[j] = (k^T S)[j]; S <- alpha * (S - beta k kts^T) + beta k v^T
    float* __restrict kts = scratch;
    std::fill(kts, kts + dv, 0.0f);
    for (int32_t i = 0; i < dk; ++i) {
      const float ki = k[i];
      const float* __restrict row = s + i * dv;
      for (int32_t j = 0; j < dv; ++j) kts[j] += ki * row[j];
    }
    for (int32_t i = 0; i < dk; ++i) {
      const float bk = beta * k[i];
      float* __restrict row = s + i * dv;
      for (int32_t j = 0; j < dv; ++j) {
        row[j] = alpha * (row[j] - bk * kts[j]) + bk * v[j];
      }
    }
    return;
  }
  for (int32_t i = 0; i < dk; ++i) {
    const float ki = k[i];
    float* __restrict row = s + i * dv;
    for (int32_t j = 0; j < dv; ++j) row[j] = alpha * row[j] + ki * v[j];
  }
}

MCSERVE_HOT float Load(float x) { return x; }
MCSERVE_HOT float Load(uint16_t x) { return Bf16ToFloat(x); }

// Asks for the lines of [p, p + bytes) ahead of their use, into every cache
// level: a non-temporal hint keeps them out of L2, and on a victim L3 (Intel
// server parts) out of L3 too, so the next step would read every checkpoint
// from DRAM again even where the whole batch's fit in L3.
MCSERVE_HOT void Prefetch(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 3);
}

// out[j0, j0 + W) += w * sum_i M[i][j] q[i]: W columns of M (dk x dv) held in
// registers while the rows stream by. When `next` is set, row i of the matrix
// read after this one is prefetched beside row i of this one: a line or two
// at a time, so the prefetches never outnumber the core's fill buffers.
template <int W, typename T>
MCSERVE_HOT void AddReadColumns(const T* __restrict m, const float* __restrict q, float w,
                                int32_t dk, int32_t dv, int32_t j0, const T* next,
                                float* __restrict out) {
  float acc[W] = {};
  for (int32_t i = 0; i < dk; ++i) {
    if (next != nullptr) Prefetch(next + int64_t{i} * dv, int64_t{dv} * sizeof(T));
    const float qi = q[i];
    const T* __restrict row = m + int64_t{i} * dv + j0;
    for (int j = 0; j < W; ++j) acc[j] += qi * Load(row[j]);
  }
  for (int j = 0; j < W; ++j) out[j0 + j] += w * acc[j];
}

// out[j] += w * sum_i M[i][j] q[i], M (dk x dv) stored as T; `next` (or null)
// is the matrix of the same shape read next, prefetched along the way.
template <typename T>
MCSERVE_HOT void AddRead(const T* m, const float* q, float w, int32_t dk, int32_t dv, const T* next,
                         float* out) {
  int32_t j0 = 0;
  for (; j0 + 32 <= dv; j0 += 32, next = nullptr) {
    AddReadColumns<32>(m, q, w, dk, dv, j0, next, out);
  }
  for (; j0 + 8 <= dv; j0 += 8, next = nullptr) AddReadColumns<8>(m, q, w, dk, dv, j0, next, out);
  for (; j0 < dv; ++j0, next = nullptr) AddReadColumns<1>(m, q, w, dk, dv, j0, next, out);
}

MCSERVE_HOT float Dot(const float* __restrict x, const float* __restrict y, int32_t d) {
  float acc = 0.0f;
  for (int32_t i = 0; i < d; ++i) acc += x[i] * y[i];
  return acc;
}

// Per-thread scratch sized for one row.
struct Scratch {
  std::vector<float> vec;      // dv
  std::vector<float> w;        // H * n: weight of checkpoint i for head h at h * n + i
  std::vector<float> w_on;     // H
  std::vector<int32_t> order;  // n
  std::vector<char> selected;  // n (bool storage)
};

void SelectTopK(const McLayerParams& p, int32_t n, const float* z, Scratch& sc) {
  auto* sel = reinterpret_cast<bool*>(sc.selected.data());
  if (p.aggregation != Aggregation::kSsc) return;
  if (n <= p.top_k) {
    std::fill(sel, sel + n, true);
    return;
  }
  std::iota(sc.order.begin(), sc.order.begin() + n, 0);
  std::partial_sort(sc.order.begin(), sc.order.begin() + p.top_k, sc.order.begin() + n,
                    [z](int32_t a, int32_t b) { return SscBetter(z, a, b); });
  std::fill(sel, sel + n, false);
  for (int32_t r = 0; r < p.top_k; ++r) sel[sc.order[r]] = true;
}

// One head's token: the state update, then its read weights (online and
// per checkpoint) into the scratch, and the online read into `out`.
MCSERVE_HOT void HeadStep(const McLayerParams& p, const McDecodeArgs& a, int32_t b, int32_t h,
                          int32_t n, Scratch& sc) {
  const int32_t H = p.n_heads, d = p.head_dim, dv = ValueDim(p);
  const int64_t row = (int64_t{b} * H + h) * d;
  const int64_t vrow = (int64_t{b} * H + h) * dv;
  const int32_t slot = a.state_slots[b];
  float* s = a.state + slot * a.state_slot_stride + int64_t{h} * d * dv;
  float* ks = a.key_sum + slot * a.key_sum_slot_stride + int64_t{h} * d;
  const float* k = a.k + row;
  const float alpha = p.scalar_decay ? a.alpha[b * H + h] : 1.0f;
  const float beta = p.rule == MemoryRule::kDelta ? a.beta[b * H + h] : 1.0f;

  UpdateState(p, s, k, a.v + vrow, alpha, beta, sc.vec.data());
  for (int32_t i = 0; i < d; ++i) ks[i] += k[i];

  float* z = sc.w.data() + int64_t{h} * n;
  const int32_t* table = a.ckpt_table + b * a.ckpt_table_stride;
  float z_on = 0.0f;
  if (a.u != nullptr) {
    const float* u = a.u + row;
    const int64_t count = a.positions[b] % p.segment_length + 1;
    z_on = p.gate_scale * Dot(u, ks, d) / static_cast<float>(count);
    for (int32_t i = 0; i < n; ++i) {
      const float* sum = a.summary + table[i] * a.summary_slot_stride + int64_t{h} * d;
      z[i] = p.gate_scale * Dot(u, sum, d);
    }
  }
  SelectTopK(p, n, z, sc);
  AggregationWeights(p, n, z_on, z, &sc.w_on[h], reinterpret_cast<const bool*>(sc.selected.data()));
  float* out = a.out + vrow;
  std::fill(out, out + dv, 0.0f);
  AddRead(static_cast<const float*>(s), a.q + row, sc.w_on[h], d, dv,
          static_cast<const float*>(nullptr), out);
}

// Reads every checkpoint of row b into its heads' outputs, one checkpoint
// (all heads, contiguous) at a time, the next one prefetched as this one is
// read (a checkpoint's heads are contiguous: head h of this one carries the
// prefetch of head h of the next).
template <typename T>
MCSERVE_HOT void ReadCheckpoints(const McLayerParams& p, const McDecodeArgs& a, int32_t b,
                                 int32_t n, const Scratch& sc) {
  const int32_t H = p.n_heads, d = p.head_dim, dv = ValueDim(p);
  const int64_t block = int64_t{d} * dv;
  const int32_t* table = a.ckpt_table + b * a.ckpt_table_stride;
  const T* base = static_cast<const T*>(a.ckpt);
  for (int32_t i = 0; i < n; ++i) {
    const T* c = base + table[i] * a.ckpt_slot_stride;
    const T* next = i + 1 < n ? base + table[i + 1] * a.ckpt_slot_stride : nullptr;
    for (int32_t h = 0; h < H; ++h) {
      const float w = sc.w[int64_t{h} * n + i];
      const T* next_h = next != nullptr ? next + h * block : nullptr;
      const int64_t row = (int64_t{b} * H + h);
      if (w == 0.0f) {
        if (next_h != nullptr) Prefetch(next_h, block * int64_t{sizeof(T)});
        continue;
      }
      AddRead(c + h * block, a.q + row * d, w, d, dv, next_h, a.out + row * dv);
    }
  }
}

// Row b's step: its heads' state updates and read weights, then its
// checkpoints. The one function compiled per instruction set.
MCSERVE_CPU_CLONES void DecodeRow(const McLayerParams& p, const McDecodeArgs& a, int32_t b,
                                  int32_t n, Scratch& sc) {
  for (int32_t h = 0; h < p.n_heads; ++h) HeadStep(p, a, b, h, n, sc);
  if (p.ckpt_dtype == CkptDtype::kBFloat16) {
    ReadCheckpoints<uint16_t>(p, a, b, n, sc);
  } else {
    ReadCheckpoints<float>(p, a, b, n, sc);
  }
}

}  // namespace

void McDecodeCpu(const McLayerParams& p, const McDecodeArgs& a, int32_t b_begin, int32_t b_end) {
  Scratch sc;
  sc.vec.resize(ValueDim(p));
  sc.w_on.resize(p.n_heads);
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
    if (static_cast<int64_t>(sc.w.size()) < int64_t{p.n_heads} * n) {
      sc.w.resize(int64_t{p.n_heads} * n);
      sc.order.resize(n);
      sc.selected.resize(n);
    }
    DecodeRow(p, a, b, n, sc);
    if (a.ckpt_weight_out != nullptr) {
      for (int32_t h = 0; h < p.n_heads; ++h) {
        for (int32_t i = 0; i < n; ++i) {
          a.ckpt_weight_out[b * a.ckpt_table_stride + i] +=
              sc.w[int64_t{h} * n + i] / static_cast<float>(p.n_heads);
        }
      }
    }
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
