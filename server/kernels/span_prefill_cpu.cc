#include "server/kernels/span_prefill_cpu.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "server/kernels/cpu_clones.h"
#include "server/kernels/cpu_isa.h"

namespace mcserve::kernels {
namespace {

// L floats, one register of the instruction set the copy is built for
// (cpu_isa.h): 16 for AVX-512, 8 for AVX2, 4 for the baseline (SSE, NEON).
template <int L>
struct Lanes {
  typedef float Vec __attribute__((vector_size(4 * L)));
};

template <class V>
MCSERVE_HOT V Load(V, const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
MCSERVE_HOT float Load(float, const float* p) { return *p; }
template <class V>
MCSERVE_HOT void Store(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}
MCSERVE_HOT void Store(float* p, float v) { *p = v; }

// acc[t][v] = columns [Lv, Lv + L) of row t of A B for t < TB, v < NV,
// where A(t, c) = a[t * rs + c * cs] and B(c, j) = b[c * ldb + j]. The
// accumulators live in registers.
template <int L, int TB, int NV, class Vec = typename Lanes<L>::Vec>
MCSERVE_HOT void Block(const float* __restrict a, int64_t rs, int64_t cs, int64_t depth,
                       const float* __restrict b, int64_t ldb, Vec (&acc)[TB][NV]) {
#pragma GCC unroll 8
  for (int t = 0; t < TB; ++t) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[t][v] = Vec{};
  }
  for (int64_t c = 0; c < depth; ++c) {
    Vec row[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) row[v] = Load(Vec{}, b + c * ldb + v * L);
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) {
      const float x = a[t * rs + c * cs];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[t][v] += x * row[v];
    }
  }
}

// The product A B ([rows, depth] x [depth, cols]) in register tiles of four
// rows by 2L columns (narrower at the edges; eight accumulator registers in
// every copy); epi(row, column, value) gets each element once, as a vector
// of L columns or, past the last whole L, as a float.
template <int L, class Epi, class Vec = typename Lanes<L>::Vec>
MCSERVE_HOT void Product(int64_t rows, int64_t cols, int64_t depth, const float* a, int64_t rs,
                         int64_t cs, const float* b, int64_t ldb, Epi epi) {
  int64_t j0 = 0;
  for (; j0 + 2 * L <= cols; j0 += 2 * L) {
    int64_t t0 = 0;
    for (; t0 + 4 <= rows; t0 += 4) {
      Vec acc[4][2];
      Block<L, 4, 2>(a + t0 * rs, rs, cs, depth, b + j0, ldb, acc);
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        epi(t0 + t, j0, acc[t][0]);
        epi(t0 + t, j0 + L, acc[t][1]);
      }
    }
    for (; t0 < rows; ++t0) {
      Vec acc[1][2];
      Block<L, 1, 2>(a + t0 * rs, rs, cs, depth, b + j0, ldb, acc);
      epi(t0, j0, acc[0][0]);
      epi(t0, j0 + L, acc[0][1]);
    }
  }
  for (; j0 + L <= cols; j0 += L) {
    for (int64_t t0 = 0; t0 < rows; ++t0) {
      Vec acc[1][1];
      Block<L, 1, 1>(a + t0 * rs, rs, cs, depth, b + j0, ldb, acc);
      epi(t0, j0, acc[0][0]);
    }
  }
  for (; j0 < cols; ++j0) {
    for (int64_t t0 = 0; t0 < rows; ++t0) {
      float acc = 0.0f;
      for (int64_t c = 0; c < depth; ++c) acc += a[t0 * rs + c * cs] * b[c * ldb + j0];
      epi(t0, j0, acc);
    }
  }
}

// Solves (I + L) X = B in place: lower [n, n] holds L strictly below its
// diagonal (the diagonal and above are not read), x [n, cols] B on entry.
template <int L>
MCSERVE_HOT void SolveOne(int64_t n, int64_t cols, const float* lower, float* x) {
  // Row i: X_i = B_i - sum_{j<i} L_ij X_j, the rows above already solved.
  for (int64_t i = 1; i < n; ++i) {
    float* xi = x + i * cols;
    Product<L>(1, cols, i, lower + i * n, 0, 1, x, cols,
               [xi](int64_t, int64_t j, auto v)
                   MCSERVE_HOT_LAMBDA { Store(xi + j, Load(v, xi + j) - v); });
  }
}

// Scratch of one head's pass: C x C blocks, segment-sized rows, the state.
struct OnlineScratch {
  std::vector<float> causal, kt, lower, p, sol, u, kw, s;
  OnlineScratch(int64_t C, int64_t dk, int64_t dv)
      : causal(C * C, 0.0f),
        kt(dk * C),
        lower(C * C),
        p(C * C),
        sol(C * (dv + dk)),
        u(C * dv),
        kw(C * dk),
        s(dk * dv) {
    for (int64_t t = 0; t < C; ++t)
      std::fill(causal.begin() + t * C, causal.begin() + t * C + t + 1, 1.0f);
  }
};

template <int L>
MCSERVE_HOT void OnlineHead(const SpanOnlineArgs& a, int64_t h, OnlineScratch& w) {
  const int64_t G = a.segments, C = a.seg_len, dk = a.dk, dv = a.dv, sd = dk * dv, wide = dv + dk;
  float* s = w.s.data();
  float* kt = w.kt.data();
  float* lower = w.lower.data();
  float* p = w.p.data();
  float* sol = w.sol.data();
  float* kw = w.kw.data();
  std::memcpy(s, a.s0 + h * sd, sizeof(float) * sd);
  for (int64_t g = 0; g < G; ++g) {
    const int64_t hg = h * G + g;
    const float* q = a.q + hg * C * dk;
    const float* k = a.k + hg * C * dk;
    const float* v = a.v + hg * C * dv;
    const float* d = a.decay != nullptr ? a.decay + hg * C * C : w.causal.data();
    const float* at = a.a != nullptr ? a.a + hg * C : nullptr;
    float* o = a.o + hg * C * dv;
    for (int64_t t = 0; t < C; ++t) {
      for (int64_t i = 0; i < dk; ++i) kt[i * C + t] = k[t * dk + i];
    }
    const float* u = v;
    if (a.beta != nullptr) {
      // [W | Y] = (I + L)^-1 [diag(beta) V | diag(beta A) K], then U = W - Y S.
      const float* beta = a.beta + hg * C;
      Product<L>(C, C, dk, k, dk, 1, kt, C,
                 [lower, d, beta, C](int64_t t, int64_t j, auto x) MCSERVE_HOT_LAMBDA {
                   Store(lower + t * C + j, beta[t] * (x * Load(x, d + t * C + j)));
                 });
      for (int64_t t = 0; t < C; ++t) {
        const float bv = beta[t], bk = at != nullptr ? beta[t] * at[t] : beta[t];
        for (int64_t j = 0; j < dv; ++j) sol[t * wide + j] = bv * v[t * dv + j];
        for (int64_t j = 0; j < dk; ++j) sol[t * wide + dv + j] = bk * k[t * dk + j];
      }
      SolveOne<L>(C, wide, lower, sol);
      float* uw = w.u.data();
      Product<L>(C, dv, dk, sol + dv, wide, 1, s, dv,
                 [uw, sol, wide, dv](int64_t t, int64_t j, auto x) MCSERVE_HOT_LAMBDA {
                   Store(uw + t * dv + j, Load(x, sol + t * wide + j) - x);
                 });
      u = uw;
    }
    // o = A (Q S) + (Q K^T o D) U
    Product<L>(C, dv, dk, q, dk, 1, s, dv,
               [o, at, dv](int64_t t, int64_t j, auto x)
                   MCSERVE_HOT_LAMBDA { Store(o + t * dv + j, at != nullptr ? at[t] * x : x); });
    Product<L>(C, C, dk, q, dk, 1, kt, C,
               [p, d, C](int64_t t, int64_t j, auto x)
                   MCSERVE_HOT_LAMBDA { Store(p + t * C + j, x * Load(x, d + t * C + j)); });
    Product<L>(C, dv, C, p, C, 1, u, dv, [o, dv](int64_t t, int64_t j, auto x) MCSERVE_HOT_LAMBDA {
      Store(o + t * dv + j, Load(x, o + t * dv + j) + x);
    });
    // S = A_C S + (diag(A_C / A) K)^T U: rows of K^T are columns of K.
    const float* kin = k;
    if (a.tail != nullptr) {
      const float* tail = a.tail + hg * C;
      for (int64_t t = 0; t < C; ++t) {
        for (int64_t i = 0; i < dk; ++i) kw[t * dk + i] = k[t * dk + i] * tail[t];
      }
      kin = kw;
    }
    const float decay = a.a_end != nullptr ? a.a_end[hg] : 1.0f;
    Product<L>(dk, dv, C, kin, 1, dk, u, dv,
               [s, decay, dv](int64_t r, int64_t j, auto x) MCSERVE_HOT_LAMBDA {
                 Store(s + r * dv + j, decay * Load(x, s + r * dv + j) + x);
               });
    if (g < a.closed) {
      std::memcpy(a.closed_state + (g * a.heads + h) * sd, s, sizeof(float) * sd);
      if (a.reset) std::fill(s, s + sd, 0.0f);
    }
  }
  std::memcpy(a.s_end + h * sd, s, sizeof(float) * sd);
}

// Fills wt [C, n] with segment (h, g)'s weights for its first `reads`
// checkpoints and scales its online read o [C, dv] by w_on.
MCSERVE_HOT void SegmentWeights(const SpanReadArgs& a, int64_t reads, float* o, float* wt) {
  const int64_t C = a.seg_len, n = a.n, dv = a.dv;
  const float w = a.weights == SpanWeights::kMean ? 1.0f / static_cast<float>(1 + reads) : 1.0f;
  for (int64_t t = 0; t < C; ++t) std::fill(wt + t * n, wt + t * n + reads, w);
  if (w != 1.0f) {
    for (int64_t j = 0; j < C * dv; ++j) o[j] *= w;
  }
}

template <int L>
MCSERVE_HOT void ReadSegment(const SpanReadArgs& a, int64_t h, int64_t g, float* wt) {
  const int64_t C = a.seg_len, dk = a.dk, dv = a.dv, n = a.n;
  const int64_t hg = h * a.segments + g, reads = std::min(a.n0 + g, n);
  const float* q = a.q + hg * C * dk;
  float* o = a.o + hg * C * dv;
  const float* w = a.w != nullptr ? a.w + hg * C * n : nullptr;
  if (a.weights != SpanWeights::kGiven) {
    SegmentWeights(a, reads, o, wt);
    w = wt;
  }
  for (int64_t i = 0; i < reads; ++i) {
    Product<L>(C, dv, dk, q, dk, 1, a.ckpt + (h * n + i) * dk * dv, dv,
               [o, w, i, n, dv](int64_t t, int64_t j, auto v) MCSERVE_HOT_LAMBDA {
                 Store(o + t * dv + j, Load(v, o + t * dv + j) + w[t * n + i] * v);
               });
  }
}

template <int L>
MCSERVE_HOT void Online(const SpanOnlineArgs& a) {
  OnlineScratch w(a.seg_len, a.dk, a.dv);
  for (int64_t h = 0; h < a.heads; ++h) OnlineHead<L>(a, h, w);
}

template <int L>
MCSERVE_HOT void Read(const SpanReadArgs& a) {
  std::vector<float> wt(a.weights == SpanWeights::kGiven ? 0 : a.seg_len * a.n);
  for (int64_t h = 0; h < a.heads; ++h) {
    for (int64_t g = 0; g < a.segments; ++g) ReadSegment<L>(a, h, g, wt.data());
  }
}

// One pair of entries per instruction set, each with its own vector width.
struct Entries {
  void (*online)(const SpanOnlineArgs&);
  void (*read)(const SpanReadArgs&);
};

void OnlineBaseline(const SpanOnlineArgs& a) { Online<4>(a); }
void ReadBaseline(const SpanReadArgs& a) { Read<4>(a); }
#if MCSERVE_HAVE_CPU_ISAS
MCSERVE_TARGET_AVX2 void OnlineAvx2(const SpanOnlineArgs& a) { Online<8>(a); }
MCSERVE_TARGET_AVX2 void ReadAvx2(const SpanReadArgs& a) { Read<8>(a); }
MCSERVE_TARGET_AVX512 void OnlineAvx512(const SpanOnlineArgs& a) { Online<16>(a); }
MCSERVE_TARGET_AVX512 void ReadAvx512(const SpanReadArgs& a) { Read<16>(a); }
#endif

// `isa`'s entries, or those of the best set this CPU runs if it lacks it.
Entries For(CpuIsa isa) {
  switch (CpuSupports(isa) ? isa : BestCpuIsa()) {
#if MCSERVE_HAVE_CPU_ISAS
    case CpuIsa::kAvx512:
      return {OnlineAvx512, ReadAvx512};
    case CpuIsa::kAvx2:
      return {OnlineAvx2, ReadAvx2};
#endif
    default:
      return {OnlineBaseline, ReadBaseline};
  }
}

}  // namespace

void SpanOnlineCpu(const SpanOnlineArgs& a, CpuIsa isa) { For(isa).online(a); }

void SpanReadCpu(const SpanReadArgs& a, CpuIsa isa) { For(isa).read(a); }

}  // namespace mcserve::kernels
