// The LibTorch wrapper of the decode kernels: every malformed call is refused
// with a status naming what is wrong, before anything is written.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "server/kernels/mc_decode_op.h"

namespace mcserve::kernels {
namespace {

constexpr int64_t kSlots = 4, kCkpts = 6, kLayers = 2, kHeads = 2, kDim = 8;

McLayerParams Params(Aggregation agg = Aggregation::kGrm) {
  McLayerParams p;
  p.n_heads = kHeads;
  p.head_dim = kDim;
  p.aggregation = agg;
  p.segment_length = 4;
  return p;
}

McPools Pools(at::ScalarType ckpt_type = at::kFloat, at::Device dev = at::kCPU) {
  const auto f = at::TensorOptions(dev).dtype(at::kFloat);
  return {at::zeros({kSlots, kLayers, kHeads, kDim, kDim}, f),
          at::zeros({kSlots, kLayers, kHeads, kDim}, f),
          at::ones({kCkpts, kLayers, kHeads, kDim, kDim}, f.dtype(ckpt_type)),
          at::ones({kCkpts, kLayers, kHeads, kDim}, f)};
}

// Two sessions with 2 and 0 checkpoints, and a padding row.
DecodeIndex Index() {
  DecodeIndex ix;
  ix.state_slots = {1, 3, -1};
  ix.positions = {9, 2, 0};
  ix.table_stride = 2;
  ix.ckpt_table = {4, 0, -1, -1, -1, -1};
  ix.ckpt_counts = {2, 0, 0};
  return ix;
}

DecodeInputs Inputs(int64_t batch) {
  DecodeInputs in;
  in.q = at::full({batch, kHeads, kDim}, 0.25f);
  in.k = at::full({batch, kHeads, kDim}, 0.25f);
  in.v = at::ones({batch, kHeads, kDim});
  in.u = at::ones({batch, kHeads, kDim});
  return in;
}

std::string Message(const absl::StatusOr<at::Tensor>& r) {
  return std::string(r.status().message());
}

TEST(KernelOpTest, DecodesAValidBatchAndZeroesPaddingRows) {
  const McPools pools = Pools();
  auto batch = DecodeBatch::Create(Params(), pools, Index());
  ASSERT_TRUE(batch.ok()) << batch.status();
  at::Tensor weights;
  auto out = DecodeLayer(Params(), pools, 1, *batch, Inputs(3), &weights);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->sizes(), at::IntArrayRef({3, kHeads, kDim}));
  EXPECT_TRUE(out->select(0, 2).eq(0).all().item<bool>());
  EXPECT_GT(out->select(0, 0).abs().sum().item<float>(), 0.0f);
  // Session 0 read two checkpoints with equal summaries: equal weights.
  EXPECT_EQ(weights.sizes(), at::IntArrayRef({3, 2}));
  EXPECT_FLOAT_EQ(weights[0][0].item<float>(), weights[0][1].item<float>());
  EXPECT_EQ(weights[1].sum().item<float>(), 0.0f);
  // Only layer 1 of session 0's and 1's state changed.
  EXPECT_TRUE(pools.state.select(1, 0).eq(0).all().item<bool>());
  EXPECT_FALSE(pools.state[1][1].eq(0).all().item<bool>());
}

TEST(KernelOpTest, RefusesSlotsOutsideThePools) {
  DecodeIndex ix = Index();
  ix.state_slots[1] = kSlots;
  auto b = DecodeBatch::Create(Params(), Pools(), std::move(ix));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(b.status().message(), "row 1: state slot 4 >= pool size 4");
  ix = Index();
  ix.ckpt_table[1] = kCkpts;
  b = DecodeBatch::Create(Params(), Pools(), std::move(ix));
  EXPECT_EQ(b.status().message(), "row 0: checkpoint slot 6 outside [0, 6)");
  ix = Index();
  ix.ckpt_counts[0] = 3;
  b = DecodeBatch::Create(Params(), Pools(), std::move(ix));
  EXPECT_EQ(b.status().message(), "row 0: checkpoint count 3 outside [0, 2]");
}

TEST(KernelOpTest, RefusesIndexArraysOfDifferentSizes) {
  DecodeIndex ix = Index();
  ix.positions.pop_back();
  auto b = DecodeBatch::Create(Params(), Pools(), std::move(ix));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.status().message(), "decode index arrays disagree in size");
}

TEST(KernelOpTest, RefusesPoolsOfTheWrongDtype) {
  McLayerParams p = Params();
  p.ckpt_dtype = CkptDtype::kBFloat16;
  auto b = DecodeBatch::Create(p, Pools(at::kFloat), Index());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.status().message(), "checkpoint pool has dtype Float, expected BFloat16");
}

TEST(KernelOpTest, RefusesMissingOrMisshapenInputs) {
  const McPools pools = Pools();
  auto batch = DecodeBatch::Create(Params(), pools, Index());
  ASSERT_TRUE(batch.ok());
  DecodeInputs in = Inputs(3);
  in.u = at::Tensor();
  EXPECT_EQ(Message(DecodeLayer(Params(), pools, 0, *batch, in, nullptr)), "u is missing");
  in = Inputs(2);
  EXPECT_EQ(Message(DecodeLayer(Params(), pools, 0, *batch, in, nullptr)),
            "q has shape [2, 2, 8], expected [3, 2, 8]");
  McLayerParams delta = Params();
  delta.rule = MemoryRule::kDelta;
  EXPECT_EQ(Message(DecodeLayer(delta, pools, 0, *batch, Inputs(3), nullptr)), "beta is missing");
  EXPECT_EQ(DecodeLayer(Params(), pools, 2, *batch, Inputs(3), nullptr).status().code(),
            absl::StatusCode::kOutOfRange);
  // Nothing was written by the refused calls.
  EXPECT_TRUE(pools.state.eq(0).all().item<bool>());
}

// A batch carries its step's launch plan (made once, for every layer), so
// a layer must have the shape it was made for.
TEST(KernelOpTest, RefusesLayerParamsOtherThanTheBatchWasMadeFor) {
  McPools pools = Pools();
  auto batch = DecodeBatch::Create(Params(), pools, Index());
  ASSERT_TRUE(batch.ok()) << batch.status();
  McLayerParams ssc = Params(Aggregation::kSsc);
  ssc.top_k = 1;
  auto r = DecodeLayer(ssc, pools, 0, *batch, Inputs(3), nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(r), "decode batch was made for another layer shape");
  EXPECT_TRUE(pools.state.eq(0).all().item<bool>());
  EXPECT_TRUE(DecodeLayer(Params(), pools, 0, *batch, Inputs(3), nullptr).ok());
}

TEST(KernelOpTest, RefusesADeviceWithoutKernels) {
  auto b = DecodeBatch::Create(Params(), Pools(at::kFloat, at::Device("meta")), Index());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.status().message().substr(0, 35), "no MC decode kernels for device met");
}

}  // namespace
}  // namespace mcserve::kernels
