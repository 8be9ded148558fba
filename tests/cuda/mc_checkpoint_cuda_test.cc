// The CUDA checkpoint freeze against the CPU reference (bit-exact: it only
// copies, rounds to bf16 and divides) on square and dk x dv heads, and the
// host-side plan and shape rules of the decode kernels (these need no device
// and always run).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "server/kernels/bf16.h"
#include "server/kernels/mc_decode.h"
#include "server/kernels/mc_decode_cuda.h"
#include "tests/cuda/device_buffer.h"

namespace mcserve::kernels {
namespace {

using cuda_test::DeviceBuffer;
using cuda_test::HaveDevice;

McLayerParams Layer(int32_t head_dim, Aggregation agg = Aggregation::kGrm, int32_t top_k = 0) {
  McLayerParams p;
  p.n_heads = 4;
  p.head_dim = head_dim;
  p.aggregation = agg;
  p.top_k = top_k;
  p.segment_length = 16;
  return p;
}

// Heads of dk = head_dim key dims and dv value dims.
McLayerParams Rect(int32_t dk, int32_t dv) {
  McLayerParams p = Layer(dk);
  p.value_dim = dv;
  return p;
}

TEST(McDecodeCudaPlanTest, SupportsHeadDimsThatFitARegisterTile) {
  for (int32_t d : {1, 4, 10, 16, 32, 63, 64, 100, 128}) {
    EXPECT_EQ(McCudaCheckShape(Layer(d)), cudaSuccess) << d;
  }
  for (int32_t d : {0, 65, 130, 132, 256}) {
    EXPECT_EQ(McCudaCheckShape(Layer(d)), cudaErrorInvalidValue) << d;
  }
  EXPECT_EQ(McCudaCheckShape(Layer(64, Aggregation::kSsc, 0)), cudaErrorInvalidValue);
}

// dk x dv heads: ceil(dk / 16) * dv <= 1024 when dv is a multiple of 4,
// else <= 256 (the tile's columns follow dv, its row groups dk).
TEST(McDecodeCudaPlanTest, SupportsRectangularHeadsThatFitARegisterTile) {
  const std::vector<std::pair<int32_t, int32_t>> fit = {{8, 16},   {16, 32},  {32, 8},   {10, 16},
                                                        {16, 10},  {64, 256}, {256, 64}, {16, 1024},
                                                        {16, 255}, {64, 63},  {1, 4},    {2048, 4}};
  for (const auto& [dk, dv] : fit) {
    EXPECT_EQ(McCudaCheckShape(Rect(dk, dv)), cudaSuccess) << dk << " x " << dv;
  }
  // Too many threads or rows per thread; {4096, 4} fits the tile but its
  // state kernel would need over 48 KiB of shared memory.
  const std::vector<std::pair<int32_t, int32_t>> refused = {
      {128, 256}, {64, 260}, {257, 64}, {16, 257}, {17, 255}, {16, 1028}, {0, 16}, {4096, 4}};
  for (const auto& [dk, dv] : refused) {
    EXPECT_EQ(McCudaCheckShape(Rect(dk, dv)), cudaErrorInvalidValue) << dk << " x " << dv;
  }
}

TEST(McDecodeCudaPlanTest, SplitsLongCachesToFillTheDevice) {
  McDecodeCudaPlan plan;
  // One session, 4 heads, 1000 checkpoints on 132 SMs: 2 * 132 / 4 = 66
  // blocks per head wanted, capped at 64 splits.
  ASSERT_EQ(PlanMcDecodeCuda(Layer(64), 1, 1000, 132, &plan), cudaSuccess);
  EXPECT_EQ(plan.num_splits, 64);
  // At most one split per 4 checkpoints.
  ASSERT_EQ(PlanMcDecodeCuda(Layer(64), 1, 10, 132, &plan), cudaSuccess);
  EXPECT_EQ(plan.num_splits, 3);
  // A batch that fills the device alone needs no split.
  ASSERT_EQ(PlanMcDecodeCuda(Layer(64), 256, 1000, 132, &plan), cudaSuccess);
  EXPECT_EQ(plan.num_splits, 1);
  // ssc reads at most top_k checkpoints.
  ASSERT_EQ(PlanMcDecodeCuda(Layer(64, Aggregation::kSsc, 4), 1, 1000, 132, &plan), cudaSuccess);
  EXPECT_EQ(plan.num_splits, 1);
  // No cache, nothing to split.
  ASSERT_EQ(PlanMcDecodeCuda(Layer(64, Aggregation::kNone), 1, 1000, 132, &plan), cudaSuccess);
  EXPECT_EQ(plan.num_splits, 1);
}

TEST(McDecodeCudaPlanTest, WorkspaceHoldsWeightsAndPartials) {
  McDecodeCudaPlan plan;
  ASSERT_EQ(PlanMcDecodeCudaSplits(Layer(64), 8, 100, 4, &plan), cudaSuccess);
  // weights 8*4*100 floats, sel and sel_z (top_k 0 -> 256 each), n_read
  // 8*4 ints, partials 4*8*4*64 floats; each 256-byte aligned.
  EXPECT_EQ(plan.workspace_bytes, 12800 + 256 + 256 + 256 + 32768);
  // Partials follow the value dims: 4*8*4*16 floats for 64 x 16 heads.
  ASSERT_EQ(PlanMcDecodeCudaSplits(Rect(64, 16), 8, 100, 4, &plan), cudaSuccess);
  EXPECT_EQ(plan.workspace_bytes, 12800 + 256 + 256 + 256 + 8192);
  EXPECT_EQ(PlanMcDecodeCudaSplits(Layer(64), 8, 0, 4, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanMcDecodeCudaSplits(Layer(64), 8, 10, 0, &plan), cudaErrorInvalidValue);
}

TEST(McDecodeCudaPlanTest, RejectsAMismatchedPlan) {
  McDecodeCudaPlan plan;
  ASSERT_EQ(PlanMcDecodeCudaSplits(Layer(64), 8, 100, 1, &plan), cudaSuccess);
  McDecodeArgs a;
  a.batch = 9;
  a.ckpt_table_stride = 100;
  EXPECT_EQ(McDecodeCuda(Layer(64), a, plan, nullptr, nullptr), cudaErrorInvalidValue);
}

// (boundary, checkpoint dtype, {dk, dv}); dv 0: square.
class CheckpointParityTest : public ::testing::TestWithParam<
                                 std::tuple<Boundary, CkptDtype, std::pair<int32_t, int32_t>>> {};

TEST_P(CheckpointParityTest, FreezesExactlyAsTheCpuReference) {
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device: not run";
  const auto [dk, dv] = std::get<2>(GetParam());
  McLayerParams p = Rect(dk, dv);
  p.boundary = std::get<0>(GetParam());
  p.ckpt_dtype = std::get<1>(GetParam());
  const int64_t L = 2, S = 9, C = 7, H = p.n_heads, d = p.head_dim;
  // One layer's states (H * dk * dv) and key sums / summaries (H * dk).
  const int64_t layer_state = H * d * ValueDim(p), layer_sum = H * d;
  const int64_t state_stride = L * layer_state, sum_stride = L * layer_sum;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  std::vector<float> state(S * state_stride), key_sum(S * sum_stride), summary(C * sum_stride);
  for (float& x : state) x = dist(rng);
  for (float& x : key_sum) x = dist(rng);
  for (float& x : summary) x = dist(rng);
  std::vector<float> ckpt_f(C * state_stride, 0.5f);
  std::vector<uint16_t> ckpt_b(C * state_stride, FloatToBf16(0.5f));
  const bool bf16 = p.ckpt_dtype == CkptDtype::kBFloat16;
  // Rows: freeze into slot 3, keep none, padding, freeze into slot 0.
  const std::vector<int32_t> slots = {5, 2, -1, 8}, dst = {3, -1, 6, 0};

  // CPU on host copies, layer 1.
  std::vector<float> cs = state, cks = key_sum, csum = summary, cf = ckpt_f;
  std::vector<uint16_t> cb = ckpt_b;
  McCheckpointArgs a;
  a.batch = 4;
  a.state_slot_stride = state_stride;
  a.key_sum_slot_stride = sum_stride;
  a.ckpt_slot_stride = state_stride;
  a.summary_slot_stride = sum_stride;
  a.state_slots = slots.data();
  a.dst_slots = dst.data();
  a.state = cs.data() + layer_state;
  a.key_sum = cks.data() + layer_sum;
  a.ckpt = bf16 ? static_cast<void*>(cb.data() + layer_state) : cf.data() + layer_state;
  a.summary = csum.data() + layer_sum;
  McCheckpointCpu(p, a);

  DeviceBuffer ds(state), dks(key_sum), dsum(summary), dslots(slots), ddst(dst);
  DeviceBuffer dckpt = bf16 ? DeviceBuffer(ckpt_b) : DeviceBuffer(ckpt_f);
  a.state_slots = dslots.as<int32_t>();
  a.dst_slots = ddst.as<int32_t>();
  a.state = ds.as<float>() + layer_state;
  a.key_sum = dks.as<float>() + layer_sum;
  a.ckpt = bf16 ? static_cast<void*>(dckpt.as<uint16_t>() + layer_state)
                : static_cast<void*>(dckpt.as<float>() + layer_state);
  a.summary = dsum.as<float>() + layer_sum;
  ASSERT_EQ(McCheckpointCuda(p, a, nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(ds.Download<float>(), cs);
  EXPECT_EQ(dks.Download<float>(), cks);
  EXPECT_EQ(dsum.Download<float>(), csum);
  if (bf16) {
    EXPECT_EQ(dckpt.Download<uint16_t>(), cb);
  } else {
    EXPECT_EQ(dckpt.Download<float>(), cf);
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, CheckpointParityTest,
    ::testing::Combine(::testing::Values(Boundary::kContinue, Boundary::kReset),
                       ::testing::Values(CkptDtype::kFloat32, CkptDtype::kBFloat16),
                       ::testing::Values(std::make_pair(16, 0), std::make_pair(10, 0),
                                         std::make_pair(8, 16), std::make_pair(16, 32),
                                         std::make_pair(32, 8), std::make_pair(12, 10))));

}  // namespace
}  // namespace mcserve::kernels
