// The span prefill's CPU loops against the same products written with
// LibTorch, in every instruction set's copy this CPU runs (cpu_isa.h), at
// sizes that reach every tile shape of each: rows in fours and single rows,
// columns in twos of the copy's vector, single vectors and single columns.
#include "server/kernels/span_prefill_cpu.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "tests/support/test_models.h"

namespace mcserve::kernels {
namespace {

// (segment length C, key dims dk, value dims dv)
using Shape = std::tuple<int64_t, int64_t, int64_t>;

using mcserve::testing::RelError;

class SpanPrefillCpuTest : public ::testing::TestWithParam<std::tuple<CpuIsa, Shape>> {
 protected:
  CpuIsa Isa() const { return std::get<0>(GetParam()); }
  const Shape& Size() const { return std::get<1>(GetParam()); }
};

// The copies this CPU runs (the baseline always).
std::vector<CpuIsa> RunnableIsas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kBaseline, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (CpuSupports(isa)) isas.push_back(isa);
  }
  return isas;
}

// The online part with LibTorch, segment by segment, from its definition.
void CheckOnline(CpuIsa isa, const Shape& shape, bool delta, bool decay, bool reset) {
  const auto [C, dk, dv] = shape;
  at::manual_seed(2);
  const int64_t H = 2, G = 3, closed = 2;
  const at::Tensor q = at::randn({H, G, C, dk}) * 0.3, k = at::randn({H, G, C, dk}) * 0.3;
  const at::Tensor v = at::randn({H, G, C, dv}), beta = at::rand({H, G, C});
  const at::Tensor cum = (-at::rand({H, G, C}) * 0.2).cumsum(-1);
  const at::Tensor incl = at::ones({C, C}, at::kBool).tril();
  const at::Tensor d =
      decay
          ? (cum.unsqueeze(-1) - cum.unsqueeze(-2)).masked_fill(incl.logical_not(), -INFINITY).exp()
          : incl.to(at::kFloat).expand({H, G, C, C});
  const at::Tensor A = decay ? cum.exp() : at::ones({H, G, C});
  const at::Tensor a_end = A.select(-1, C - 1).contiguous(), tail = (a_end.unsqueeze(-1) / A);
  const at::Tensor s0 = at::randn({H, dk, dv});
  at::Tensor o = at::empty({H, G, C, dv});
  at::Tensor closed_state = at::empty({closed, H, dk, dv}), s_end = at::empty({H, dk, dv});
  const at::Tensor dc = d.contiguous(), tc = tail.contiguous();
  SpanOnlineArgs a;
  a.heads = H;
  a.segments = G;
  a.seg_len = C;
  a.dk = dk;
  a.dv = dv;
  a.closed = closed;
  a.reset = reset;
  a.q = q.data_ptr<float>();
  a.k = k.data_ptr<float>();
  a.v = v.data_ptr<float>();
  a.beta = delta ? beta.data_ptr<float>() : nullptr;
  if (decay) {
    a.decay = dc.data_ptr<float>();
    a.a = A.data_ptr<float>();
    a.tail = tc.data_ptr<float>();
    a.a_end = a_end.data_ptr<float>();
  }
  a.s0 = s0.data_ptr<float>();
  a.o = o.data_ptr<float>();
  a.closed_state = closed_state.data_ptr<float>();
  a.s_end = s_end.data_ptr<float>();
  SpanOnlineCpu(a, isa);

  at::Tensor s = s0;
  for (int64_t g = 0; g < G; ++g) {
    const at::Tensor qg = q.select(1, g), kg = k.select(1, g), vg = v.select(1, g);
    const at::Tensor dg = d.select(1, g), ag = A.select(1, g).unsqueeze(-1);
    at::Tensor u = vg;
    if (delta) {
      const at::Tensor bg = beta.select(1, g).unsqueeze(-1);
      const at::Tensor lower = (at::bmm(kg, kg.transpose(1, 2)) * dg).tril(-1) * bg;
      const at::Tensor sol = at::linalg_solve_triangular(
          lower + at::eye(C), at::cat({bg * vg, bg * ag * kg}, -1), false, true, true);
      u = sol.narrow(-1, 0, dv) - at::bmm(sol.narrow(-1, dv, dk), s);
    }
    const at::Tensor want = ag * at::bmm(qg, s) + at::bmm(at::bmm(qg, kg.transpose(1, 2)) * dg, u);
    EXPECT_LE(RelError(o.select(1, g), want), 1e-5) << g;
    s = a_end.select(1, g).view({H, 1, 1}) * s +
        at::bmm((kg * tail.select(1, g).unsqueeze(-1)).transpose(1, 2), u);
    if (g < closed) {
      EXPECT_LE(RelError(closed_state[g], s), 1e-5) << g;
      if (reset) s = at::zeros_like(s);
    }
  }
  EXPECT_LE(RelError(s_end, s), 1e-5);
}

TEST_P(SpanPrefillCpuTest, OnlinePartMatchesItsDefinitionSegmentBySegment) {
  for (const bool delta : {false, true}) {
    for (const bool decay : {false, true}) {
      for (const bool reset : {false, true}) {
        SCOPED_TRACE(::testing::Message()
                     << "delta " << delta << " decay " << decay << " reset " << reset);
        CheckOnline(Isa(), Size(), delta, decay, reset);
      }
    }
  }
}

void CheckRead(CpuIsa isa, const Shape& shape, SpanWeights mode) {
  const auto [C, dk, dv] = shape;
  at::manual_seed(3);
  const int64_t H = 2, G = 4, n = 5, n0 = 2;  // segments read 2, 3, 4 and 5 checkpoints
  const at::Tensor q = at::randn({H, G, C, dk}), w = at::rand({H, G, C, n});
  const at::Tensor ckpt = at::randn({H, n, dk, dv}), o0 = at::randn({H, G, C, dv});
  at::Tensor o = o0.clone();
  SpanReadArgs a;
  a.heads = H;
  a.segments = G;
  a.seg_len = C;
  a.n = n;
  a.n0 = n0;
  a.dk = dk;
  a.dv = dv;
  a.weights = mode;
  a.q = q.data_ptr<float>();
  if (mode == SpanWeights::kGiven) a.w = w.data_ptr<float>();
  a.ckpt = ckpt.data_ptr<float>();
  a.o = o.data_ptr<float>();
  SpanReadCpu(a, isa);
  for (int64_t g = 0; g < G; ++g) {
    const int64_t reads = std::min(n0 + g, n);
    const double mean = 1.0 / static_cast<double>(1 + reads);
    at::Tensor want = mode == SpanWeights::kMean ? o0.select(1, g) * mean : o0.select(1, g);
    for (int64_t i = 0; i < reads; ++i) {
      const at::Tensor read = at::bmm(q.select(1, g), ckpt.select(1, i));
      if (mode == SpanWeights::kGiven) {
        want = want + w.select(1, g).select(-1, i).unsqueeze(-1) * read;
      } else {
        want = want + (mode == SpanWeights::kMean ? read * mean : read);
      }
    }
    EXPECT_LE(RelError(o.select(1, g), want), 1e-5) << g;
  }
}

TEST_P(SpanPrefillCpuTest, ReadAddsTheWeightedCheckpointReads) {
  CheckRead(Isa(), Size(), SpanWeights::kGiven);
}

TEST_P(SpanPrefillCpuTest, ReadWeighsResidualAndMeanItself) {
  {
    SCOPED_TRACE("residual");
    CheckRead(Isa(), Size(), SpanWeights::kResidual);
  }
  SCOPED_TRACE("mean");
  CheckRead(Isa(), Size(), SpanWeights::kMean);
}

std::string CaseName(const ::testing::TestParamInfo<std::tuple<CpuIsa, Shape>>& info) {
  const auto& [isa, shape] = info.param;
  const auto [C, dk, dv] = shape;
  return std::string(CpuIsaName(isa)) + "_C" + std::to_string(C) + "_dk" + std::to_string(dk) +
         "_dv" + std::to_string(dv);
}

INSTANTIATE_TEST_SUITE_P(Shapes, SpanPrefillCpuTest,
                         ::testing::Combine(::testing::ValuesIn(RunnableIsas()),
                                            ::testing::Values(Shape{7, 8, 8}, Shape{32, 32, 32},
                                                              Shape{5, 24, 40}, Shape{16, 48, 48},
                                                              Shape{9, 64, 128}, Shape{4, 17, 33},
                                                              Shape{12, 20, 12})),
                         CaseName);

// The default copy is one this CPU runs; the names are MCSERVE_MAX_CPU_ISA's values.
TEST(CpuIsaTest, TheDefaultIsARunnableCopy) {
  EXPECT_TRUE(CpuSupports(CpuIsa::kBaseline));
  EXPECT_TRUE(CpuSupports(BestCpuIsa()));
  EXPECT_EQ(CpuIsaName(CpuIsa::kAvx512), "avx512");
  EXPECT_EQ(CpuIsaName(CpuIsa::kAvx2), "avx2");
  EXPECT_EQ(CpuIsaName(CpuIsa::kBaseline), "baseline");
}

}  // namespace
}  // namespace mcserve::kernels
