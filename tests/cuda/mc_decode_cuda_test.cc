// The CUDA decode kernels against the CPU reference (mc_decode.h), on fresh
// random inputs, with every output poisoned (NaN) before each run: every
// aggregation x rule x decay x checkpoint dtype, ragged layouts (sessions
// with 0, 1 and many checkpoints, padding rows, batch sizes that are not a
// multiple of anything), square and rectangular (dk x dv) heads on both load
// paths and both register tiles, and forced splits.
//
// Without a CUDA device the device tests are skipped and CTest reports them
// as not run (SKIP_REGULAR_EXPRESSION), never as passed. The plan and shape
// tests are host logic and run everywhere.
#include "server/kernels/mc_decode_cuda.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "server/kernels/bf16.h"
#include "server/kernels/mc_decode.h"
#include "tests/cuda/device_buffer.h"

namespace mcserve::kernels {
namespace {

using cuda_test::DeviceBuffer;
using cuda_test::HaveDevice;

#define REQUIRE_DEVICE() \
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device: not run"

// One random decode problem: pools for 2 layers (the kernels run layer 1,
// so layer offsets are exercised), a ragged batch, host copies of it all.
struct Problem {
  McLayerParams p;
  int32_t B = 0;
  int64_t max_n = 1, L = 2, S = 0, C = 0;
  std::vector<float> q, k, v, u, alpha, beta;
  std::vector<float> state, key_sum, summary;
  std::vector<float> ckpt_f32;
  std::vector<uint16_t> ckpt_bf16;
  std::vector<int32_t> state_slots, table, counts;
  std::vector<int64_t> positions;

  int64_t Dk() const { return p.head_dim; }
  int64_t Dv() const { return ValueDim(p); }
  int64_t StateStride() const { return L * LayerState(); }
  int64_t SumStride() const { return L * LayerSum(); }
  int64_t LayerState() const { return p.n_heads * Dk() * Dv(); }
  int64_t LayerSum() const { return p.n_heads * Dk(); }
};

std::vector<float> Random(std::mt19937& rng, size_t n, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void L2NormalizeRows(std::vector<float>& v, int d) {
  for (size_t r = 0; r < v.size() / d; ++r) {
    float n = 0.0f;
    for (int i = 0; i < d; ++i) n += v[r * d + i] * v[r * d + i];
    n = std::max(std::sqrt(n), 1e-6f);
    for (int i = 0; i < d; ++i) v[r * d + i] /= n;
  }
}

// counts[b] < 0 marks a padding row.
Problem MakeProblem(const McLayerParams& params, const std::vector<int32_t>& counts,
                    uint32_t seed) {
  std::mt19937 rng(seed);
  Problem pr;
  pr.p = params;
  const int H = params.n_heads, dk = params.head_dim, dv = ValueDim(params);
  pr.B = static_cast<int32_t>(counts.size());
  int64_t total = 0;
  for (int32_t c : counts) {
    pr.max_n = std::max<int64_t>(pr.max_n, c);
    total += std::max(c, 0);
  }
  pr.S = pr.B + 3;
  pr.C = total + 5;
  const size_t rows = static_cast<size_t>(pr.B) * H;
  pr.q = Random(rng, rows * dk, 1.0f);
  pr.k = Random(rng, rows * dk, 1.0f);
  L2NormalizeRows(pr.q, dk);
  L2NormalizeRows(pr.k, dk);
  pr.v = Random(rng, rows * dv, 1.0f);
  pr.u = Random(rng, rows * dk, 1.0f);
  std::uniform_real_distribution<float> unit(0.05f, 0.95f);
  for (size_t i = 0; i < rows; ++i) {
    pr.alpha.push_back(unit(rng));
    pr.beta.push_back(unit(rng));
  }
  pr.state = Random(rng, pr.S * pr.StateStride(), 0.3f);
  pr.key_sum = Random(rng, pr.S * pr.SumStride(), 1.0f);
  pr.summary = Random(rng, pr.C * pr.SumStride(), 0.5f);
  pr.ckpt_f32 = Random(rng, pr.C * pr.StateStride(), 0.3f);
  if (params.ckpt_dtype == CkptDtype::kBFloat16) {
    for (float x : pr.ckpt_f32) pr.ckpt_bf16.push_back(FloatToBf16(x));
  }
  std::vector<int32_t> state_perm(pr.S), ckpt_perm(pr.C);
  std::iota(state_perm.begin(), state_perm.end(), 0);
  std::iota(ckpt_perm.begin(), ckpt_perm.end(), 0);
  std::shuffle(state_perm.begin(), state_perm.end(), rng);
  std::shuffle(ckpt_perm.begin(), ckpt_perm.end(), rng);
  pr.table.assign(pr.B * pr.max_n, -1);
  std::uniform_int_distribution<int64_t> pos(0, 5000);
  size_t next = 0;
  for (int32_t b = 0; b < pr.B; ++b) {
    const int32_t n = counts[b];
    pr.state_slots.push_back(n < 0 ? -1 : state_perm[b]);
    pr.counts.push_back(std::max(n, 0));
    pr.positions.push_back(pos(rng));
    for (int32_t i = 0; i < n; ++i) pr.table[b * pr.max_n + i] = ckpt_perm[next++];
  }
  return pr;
}

struct Outputs {
  std::vector<float> out, state, key_sum, weights;
};

McDecodeArgs ArgsFor(const Problem& pr) {
  McDecodeArgs a;
  a.batch = pr.B;
  a.state_slot_stride = pr.StateStride();
  a.key_sum_slot_stride = pr.SumStride();
  a.ckpt_slot_stride = pr.StateStride();
  a.summary_slot_stride = pr.SumStride();
  a.ckpt_table_stride = pr.max_n;
  return a;
}

bool Gated(Aggregation a) {
  return a == Aggregation::kGrm || a == Aggregation::kSoup || a == Aggregation::kSsc;
}

Outputs RunCpu(const Problem& pr) {
  Outputs o;
  o.state = pr.state;
  o.key_sum = pr.key_sum;
  o.out.assign(pr.v.size(), NAN);
  o.weights.assign(pr.B * pr.max_n, NAN);
  McDecodeArgs a = ArgsFor(pr);
  a.q = pr.q.data();
  a.k = pr.k.data();
  a.v = pr.v.data();
  a.u = Gated(pr.p.aggregation) ? pr.u.data() : nullptr;
  a.alpha = pr.p.scalar_decay ? pr.alpha.data() : nullptr;
  a.beta = pr.p.rule == MemoryRule::kDelta ? pr.beta.data() : nullptr;
  a.state = o.state.data() + pr.LayerState();
  a.key_sum = o.key_sum.data() + pr.LayerSum();
  a.state_slots = pr.state_slots.data();
  a.positions = pr.positions.data();
  a.ckpt = pr.p.ckpt_dtype == CkptDtype::kBFloat16
               ? static_cast<const void*>(pr.ckpt_bf16.data() + pr.LayerState())
               : static_cast<const void*>(pr.ckpt_f32.data() + pr.LayerState());
  a.summary = pr.summary.data() + pr.LayerSum();
  a.ckpt_table = pr.table.data();
  a.ckpt_counts = pr.counts.data();
  a.out = o.out.data();
  a.ckpt_weight_out = o.weights.data();
  McDecodeCpu(pr.p, a, 0, pr.B);
  return o;
}

Outputs RunCuda(const Problem& pr, int32_t forced_splits) {
  McDecodeCudaPlan plan;
  if (forced_splits > 0) {
    EXPECT_EQ(PlanMcDecodeCudaSplits(pr.p, pr.B, pr.max_n, forced_splits, &plan), cudaSuccess);
  } else {
    int32_t sms = 0;
    EXPECT_EQ(CudaSmCount(0, &sms), cudaSuccess);
    EXPECT_EQ(PlanMcDecodeCuda(pr.p, pr.B, pr.max_n, sms, &plan), cudaSuccess);
  }
  const bool bf16 = pr.p.ckpt_dtype == CkptDtype::kBFloat16;
  DeviceBuffer q(pr.q), k(pr.k), v(pr.v), u(pr.u), alpha(pr.alpha), beta(pr.beta);
  DeviceBuffer state(pr.state), key_sum(pr.key_sum), summary(pr.summary);
  DeviceBuffer ckpt = bf16 ? DeviceBuffer(pr.ckpt_bf16) : DeviceBuffer(pr.ckpt_f32);
  DeviceBuffer slots(pr.state_slots), positions(pr.positions), table(pr.table), counts(pr.counts);
  DeviceBuffer out = DeviceBuffer::Poisoned(pr.v.size() * sizeof(float));
  DeviceBuffer weights = DeviceBuffer::Poisoned(pr.B * pr.max_n * sizeof(float));
  DeviceBuffer ws = DeviceBuffer::Poisoned(plan.workspace_bytes);

  McDecodeArgs a = ArgsFor(pr);
  a.q = q.as<float>();
  a.k = k.as<float>();
  a.v = v.as<float>();
  a.u = Gated(pr.p.aggregation) ? u.as<float>() : nullptr;
  a.alpha = pr.p.scalar_decay ? alpha.as<float>() : nullptr;
  a.beta = pr.p.rule == MemoryRule::kDelta ? beta.as<float>() : nullptr;
  a.state = state.as<float>() + pr.LayerState();
  a.key_sum = key_sum.as<float>() + pr.LayerSum();
  a.state_slots = slots.as<int32_t>();
  a.positions = positions.as<int64_t>();
  a.ckpt = bf16 ? static_cast<const void*>(ckpt.as<uint16_t>() + pr.LayerState())
                : static_cast<const void*>(ckpt.as<float>() + pr.LayerState());
  a.summary = summary.as<float>() + pr.LayerSum();
  a.ckpt_table = table.as<int32_t>();
  a.ckpt_counts = counts.as<int32_t>();
  a.out = out.as<float>();
  a.ckpt_weight_out = weights.as<float>();
  EXPECT_EQ(McDecodeCuda(pr.p, a, plan, ws.get(), nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  Outputs o;
  o.out = out.Download<float>();
  o.state = state.Download<float>();
  o.key_sum = key_sum.Download<float>();
  o.weights = weights.Download<float>();
  return o;
}

// |got - want| <= atol + rtol |want| everywhere; names the first miss.
void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, float rtol,
                 float atol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << "[" << i << "] = " << got[i];
    ASSERT_LE(std::fabs(got[i] - want[i]), atol + rtol * std::fabs(want[i]))
        << what << "[" << i << "]: cuda " << got[i] << ", cpu " << want[i];
  }
}

using Variant = std::tuple<Aggregation, int32_t /*top_k*/, MemoryRule, bool /*decay*/, CkptDtype>;

class DecodeParityTest : public ::testing::TestWithParam<Variant> {
 protected:
  // value_dim 0: square heads.
  McLayerParams Params(int32_t head_dim, int32_t value_dim = 0) const {
    McLayerParams p;
    std::tie(p.aggregation, p.top_k, p.rule, p.scalar_decay, p.ckpt_dtype) = GetParam();
    p.n_heads = 3;
    p.head_dim = head_dim;
    p.value_dim = value_dim;
    p.segment_length = 8;
    p.gate_scale = 1.7f;
    return p;
  }

  void Check(const McLayerParams& p, const std::vector<int32_t>& counts, uint32_t seed,
             int32_t splits) {
    const Problem pr = MakeProblem(p, counts, seed);
    const Outputs cpu = RunCpu(pr);
    const Outputs gpu = RunCuda(pr, splits);
    const std::string tag = "dk=" + std::to_string(pr.Dk()) + " dv=" + std::to_string(pr.Dv()) +
                            " B=" + std::to_string(pr.B) + " splits=" + std::to_string(splits) +
                            " ";
    ExpectClose(gpu.out, cpu.out, 1e-4f, 1e-5f, tag + "out");
    ExpectClose(gpu.state, cpu.state, 1e-5f, 1e-6f, tag + "state");
    ExpectClose(gpu.key_sum, cpu.key_sum, 0.0f, 0.0f, tag + "key_sum");
    ExpectClose(gpu.weights, cpu.weights, 1e-5f, 1e-6f, tag + "ckpt weights");
    for (size_t i = 0; i < cpu.weights.size(); ++i) {  // ssc picks the same checkpoints
      ASSERT_EQ(gpu.weights[i] == 0.0f, cpu.weights[i] == 0.0f) << tag << "weight " << i;
    }
  }

  // The fixed layouts, then a random batch of `rows` sessions with up to
  // `max_count` checkpoints each under several splits.
  void CheckLayouts(const McLayerParams& p, uint32_t& seed, int32_t rows = 37,
                    int32_t max_count = 80) {
    const std::vector<std::vector<int32_t>> layouts = {
        {0}, {1}, {0, 1, 7, -1, 33}, {-1, -1}, {64, 2, 0, 5, 1, 0, 3}};
    for (const auto& layout : layouts) Check(p, layout, seed++, /*splits=*/0);
    std::mt19937 rng(seed++);
    std::uniform_int_distribution<int32_t> n(-1, max_count);
    std::vector<int32_t> big(rows);
    for (int32_t& c : big) c = n(rng);
    for (int32_t splits : {0, 1, 3, 64}) Check(p, big, seed++, splits);
  }
};

TEST_P(DecodeParityTest, MatchesCpuReferenceOnRaggedBatches) {
  REQUIRE_DEVICE();
  uint32_t seed = 1;
  for (int32_t d : {16, 64, 128, 12, 10}) CheckLayouts(Params(d), seed);
}

// dk != dv: columns (V, threads per row) follow dv, row groups dk. dv = 10
// and 63 take the scalar load path, dk = 10 the vector one; 40 x 64 (4-row
// tile) and 100 x 128 (16-row tile) leave threads with fewer rows than
// others; 64 x 63, 64 x 256 and 256 x 64 fill the 16-row tile at the shape
// limit. A smaller random batch than the square test's keeps the pools
// (every slot is filled) small.
TEST_P(DecodeParityTest, MatchesCpuReferenceOnRectangularHeads) {
  REQUIRE_DEVICE();
  const std::vector<std::pair<int32_t, int32_t>> shapes = {
      {8, 16},   {16, 32},  {32, 16},   {16, 10}, {10, 16},  {40, 64},
      {64, 128}, {128, 64}, {100, 128}, {64, 63}, {64, 256}, {256, 64}};
  uint32_t seed = 1000;
  for (const auto& [dk, dv] : shapes) {
    CheckLayouts(Params(dk, dv), seed, /*rows=*/13, /*max_count=*/24);
  }
}

std::string VariantName(const ::testing::TestParamInfo<Variant>& info) {
  const char* agg[] = {"none", "residual", "mean", "grm", "soup", "ssc"};
  const auto [a, k, rule, decay, dtype] = info.param;
  std::string s = agg[static_cast<int>(a)];
  if (a == Aggregation::kSsc) s += "k" + std::to_string(k);
  s += rule == MemoryRule::kDelta ? "_delta" : "_hebbian";
  s += decay ? "_decay" : "_nodecay";
  s += dtype == CkptDtype::kBFloat16 ? "_bf16" : "_f32";
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    AllVariants, DecodeParityTest,
    ::testing::Combine(::testing::Values(Aggregation::kNone, Aggregation::kResidual,
                                         Aggregation::kMean, Aggregation::kGrm, Aggregation::kSoup),
                       ::testing::Values(0),
                       ::testing::Values(MemoryRule::kHebbian, MemoryRule::kDelta),
                       ::testing::Bool(),
                       ::testing::Values(CkptDtype::kFloat32, CkptDtype::kBFloat16)),
    VariantName);
INSTANTIATE_TEST_SUITE_P(
    Ssc, DecodeParityTest,
    ::testing::Combine(::testing::Values(Aggregation::kSsc), ::testing::Values(1, 2, 4),
                       ::testing::Values(MemoryRule::kHebbian, MemoryRule::kDelta),
                       ::testing::Bool(),
                       ::testing::Values(CkptDtype::kFloat32, CkptDtype::kBFloat16)),
    VariantName);

}  // namespace
}  // namespace mcserve::kernels
