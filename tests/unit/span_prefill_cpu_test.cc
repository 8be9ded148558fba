// The span prefill's CPU loops against the same products written with
// LibTorch, at sizes that reach every tile shape: rows in fours and single
// rows, columns in 32s, 16s and single columns.
#include "server/kernels/span_prefill_cpu.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

namespace mcserve::kernels {
namespace {

// (segment length C, key dims dk, value dims dv)
using Shape = std::tuple<int64_t, int64_t, int64_t>;

double RelError(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / (want.abs().max().item<double>() + 1e-12);
}

class SpanPrefillCpuTest : public ::testing::TestWithParam<Shape> {};

TEST_P(SpanPrefillCpuTest, SolveUnitLowerMatchesTheTriangularSolve) {
  const auto [C, dk, dv] = GetParam();
  at::manual_seed(1);
  const int64_t batch = 3, cols = dk + dv;
  // Garbage on and above the diagonal must not be read.
  const at::Tensor full = at::randn({batch, C, C}) * 0.3;
  const at::Tensor b = at::randn({batch, C, cols});
  at::Tensor x = b.clone();
  SolveUnitLowerCpu(batch, C, cols, full.data_ptr<float>(), x.data_ptr<float>());
  const at::Tensor want = at::linalg_solve_triangular(full.tril(-1) + at::eye(C), b,
                                                      /*upper=*/false, /*left=*/true,
                                                      /*unitriangular=*/true);
  EXPECT_LE(RelError(x, want), 1e-5);
}

void CheckRecurrence(const Shape& shape, bool delta, bool decay, bool reset) {
  const auto [C, dk, dv] = shape;
  at::manual_seed(2);
  const int64_t H = 2, G = 3, closed = 2;
  const at::Tensor w = at::randn({H, G, C, dv}), y = at::randn({H, G, C, dk}) * 0.2;
  const at::Tensor k = at::randn({H, G, C, dk}) * 0.2, a_end = at::rand({H, G});
  const at::Tensor s0 = at::randn({H, dk, dv});
  at::Tensor s_before = at::empty({H, G, dk, dv}), u = at::empty({H, G, C, dv});
  at::Tensor closed_state = at::empty({closed, H, dk, dv}), s_end = at::empty({H, dk, dv});
  SpanRecurrenceArgs a;
  a.heads = H;
  a.segments = G;
  a.seg_len = C;
  a.dk = dk;
  a.dv = dv;
  a.closed = closed;
  a.reset = reset;
  a.w = w.data_ptr<float>();
  a.y = delta ? y.data_ptr<float>() : nullptr;
  a.k = k.data_ptr<float>();
  a.a_end = decay ? a_end.data_ptr<float>() : nullptr;
  a.s0 = s0.data_ptr<float>();
  a.s_before = s_before.data_ptr<float>();
  a.u = u.data_ptr<float>();
  a.closed_state = closed_state.data_ptr<float>();
  a.s_end = s_end.data_ptr<float>();
  SpanRecurrenceCpu(a);

  at::Tensor s = s0;
  for (int64_t g = 0; g < G; ++g) {
    EXPECT_LE(RelError(s_before.select(1, g), s), 1e-5) << g;
    const at::Tensor ug = delta ? w.select(1, g) - at::bmm(y.select(1, g), s) : w.select(1, g);
    EXPECT_LE(RelError(u.select(1, g), ug), 1e-5) << g;
    const at::Tensor scale = decay ? a_end.select(1, g).view({H, 1, 1}) : at::ones({H, 1, 1});
    s = scale * s + at::bmm(k.select(1, g).transpose(1, 2), ug);
    if (g < closed) {
      EXPECT_LE(RelError(closed_state[g], s), 1e-5) << g;
      if (reset) s = at::zeros_like(s);
    }
  }
  EXPECT_LE(RelError(s_end, s), 1e-5);
}

TEST_P(SpanPrefillCpuTest, RecurrenceMatchesSegmentBySegmentProducts) {
  for (const bool delta : {false, true}) {
    for (const bool decay : {false, true}) {
      for (const bool reset : {false, true}) {
        SCOPED_TRACE(::testing::Message()
                     << "delta " << delta << " decay " << decay << " reset " << reset);
        CheckRecurrence(GetParam(), delta, decay, reset);
      }
    }
  }
}

TEST_P(SpanPrefillCpuTest, ReadAddsTheWeightedCheckpointReads) {
  const auto [C, dk, dv] = GetParam();
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
  a.q = q.data_ptr<float>();
  a.w = w.data_ptr<float>();
  a.ckpt = ckpt.data_ptr<float>();
  a.o = o.data_ptr<float>();
  SpanReadCpu(a);
  for (int64_t g = 0; g < G; ++g) {
    at::Tensor want = o0.select(1, g);
    for (int64_t i = 0; i < std::min(n0 + g, n); ++i) {
      want = want + w.select(1, g).select(-1, i).unsqueeze(-1) *
                        at::bmm(q.select(1, g), ckpt.select(1, i));
    }
    EXPECT_LE(RelError(o.select(1, g), want), 1e-5) << g;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SpanPrefillCpuTest,
                         ::testing::Values(Shape{7, 8, 8}, Shape{32, 32, 32}, Shape{5, 24, 40},
                                           Shape{16, 48, 48}, Shape{9, 64, 128}, Shape{4, 17, 33}));

}  // namespace
}  // namespace mcserve::kernels
