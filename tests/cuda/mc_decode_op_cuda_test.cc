// The LibTorch wrapper of the decode kernels on a GPU: DecodeLayer launches
// on LibTorch's current stream (not the legacy default stream), with the
// plan and workspace DecodeBatch::Create made once for the step. Needs a
// LibTorch built with CUDA; without a device the tests are skipped and
// CTest reports them as not run. Rectangular (dk x dv) heads take the same
// path and compute what the CPU path computes.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "server/kernels/mc_decode_op.h"
#include "tests/cuda/device_buffer.h"

namespace mcserve::kernels {
namespace {

using cuda_test::CheckCuda;
using cuda_test::HaveDevice;

#define REQUIRE_DEVICE() \
  if (!HaveDevice()) GTEST_SKIP() << "no CUDA device: not run"

constexpr int64_t kSlots = 4, kCkpts = 6, kLayers = 2, kHeads = 2, kDim = 8;

McLayerParams Params() {
  McLayerParams p;
  p.n_heads = kHeads;
  p.head_dim = kDim;
  p.aggregation = Aggregation::kGrm;
  p.segment_length = 4;
  return p;
}

McPools Pools(const at::Device& dev) {
  const auto f = at::TensorOptions(dev).dtype(at::kFloat);
  return {at::zeros({kSlots, kLayers, kHeads, kDim, kDim}, f),
          at::zeros({kSlots, kLayers, kHeads, kDim}, f),
          at::ones({kCkpts, kLayers, kHeads, kDim, kDim}, f),
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

DecodeInputs Inputs(const at::Device& dev) {
  const auto f = at::TensorOptions(dev).dtype(at::kFloat);
  DecodeInputs in;
  in.q = at::full({3, kHeads, kDim}, 0.25f, f);
  in.k = at::full({3, kHeads, kDim}, 0.25f, f);
  in.v = at::ones({3, kHeads, kDim}, f);
  in.u = at::ones({3, kHeads, kDim}, f);
  return in;
}

// A host function that holds its stream until `*release` (or 30 s).
struct Gate {
  std::atomic<bool> release{false};
  std::atomic<bool> timed_out{false};
};
void CUDART_CB HoldStream(void* arg) {
  auto* gate = static_cast<Gate*>(arg);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!gate->release.load()) {
    if (std::chrono::steady_clock::now() > deadline) {
      gate->timed_out = true;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(McDecodeOpCudaTest, CreatePlansTheStepOnce) {
  REQUIRE_DEVICE();
  const at::Device dev(at::kCUDA, 0);
  const McPools pools = Pools(dev);
  auto batch = DecodeBatch::Create(Params(), pools, Index());
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->cuda_plan().batch, 3);
  EXPECT_EQ(batch->cuda_plan().max_ckpts, 2);
  EXPECT_GE(batch->cuda_plan().num_splits, 1);
  EXPECT_EQ(batch->workspace().device(), dev);
  EXPECT_EQ(batch->workspace().numel(), batch->cuda_plan().workspace_bytes);
}

// With a side stream current and held back, the layer's kernels queue
// behind it: nothing is written until the stream is released. (On the
// legacy default stream they would run at once: pool streams do not
// synchronize with it.)
TEST(McDecodeOpCudaTest, LaunchesOnTheCurrentStream) {
  REQUIRE_DEVICE();
  const at::Device dev(at::kCUDA, 0);
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, dev.index());
  const c10::cuda::CUDAStreamGuard use(side);
  const McPools pools = Pools(dev);
  auto batch = DecodeBatch::Create(Params(), pools, Index());
  ASSERT_TRUE(batch.ok()) << batch.status();
  const DecodeInputs in = Inputs(dev);
  const at::Tensor before = pools.state.cpu();
  const size_t bytes = static_cast<size_t>(pools.state.numel()) * sizeof(float);
  // Everything allocated up front: nothing below may wait on `side`.
  void* seen = nullptr;
  CheckCuda(cudaMallocHost(&seen, bytes), "pinned buffer");
  cudaStream_t probe = nullptr;
  CheckCuda(cudaStreamCreateWithFlags(&probe, cudaStreamNonBlocking), "probe stream");
  side.synchronize();

  Gate gate;
  CheckCuda(cudaLaunchHostFunc(side.stream(), HoldStream, &gate), "hold the stream");
  auto out = DecodeLayer(Params(), pools, 1, *batch, in, nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  CheckCuda(cudaStreamSynchronize(cudaStreamLegacy), "legacy stream");
  CheckCuda(cudaMemcpyAsync(seen, pools.state.data_ptr(), bytes, cudaMemcpyDeviceToHost, probe),
            "read the state");
  CheckCuda(cudaStreamSynchronize(probe), "probe");
  const at::Tensor held = at::from_blob(seen, before.sizes(), at::kFloat).clone();
  gate.release = true;
  side.synchronize();
  EXPECT_FALSE(gate.timed_out.load()) << "DecodeLayer waited for the held stream";
  EXPECT_TRUE(held.equal(before)) << "the kernels did not wait for the current stream";
  // Released, they ran: session 0 and 1's layer-1 state changed.
  EXPECT_FALSE(pools.state.cpu()[1][1].eq(0).all().item<bool>());
  CheckCuda(cudaStreamDestroy(probe), "probe stream");
  CheckCuda(cudaFreeHost(seen), "pinned buffer");
}

// Deterministic values of `shape` in [-scale, scale].
at::Tensor Wave(at::IntArrayRef shape, double phase, double scale) {
  int64_t n = 1;
  for (int64_t x : shape) n *= x;
  return (at::sin(at::arange(n, at::kFloat) * 0.37 + phase) * scale).reshape(shape);
}

// dk x dv heads through the wrapper: the CUDA path computes what the CPU
// path computes (read, online state, key sum, ckpt weights, and the
// checkpoint and summary one closing session freezes).
TEST(McDecodeOpCudaTest, RectangularHeadsMatchTheCpuPath) {
  REQUIRE_DEVICE();
  constexpr int64_t kDk = 8, kDv = 16, kB = 3;
  McLayerParams p = Params();
  p.head_dim = kDk;
  p.value_dim = kDv;
  p.rule = MemoryRule::kDelta;
  const McPools cpu{Wave({kSlots, kLayers, kHeads, kDk, kDv}, 0.1, 0.3),
                    Wave({kSlots, kLayers, kHeads, kDk}, 0.2, 1.0),
                    Wave({kCkpts, kLayers, kHeads, kDk, kDv}, 0.3, 0.3),
                    Wave({kCkpts, kLayers, kHeads, kDk}, 0.4, 0.5)};
  const at::Device dev(at::kCUDA, 0);
  const McPools gpu{cpu.state.to(dev), cpu.key_sum.to(dev), cpu.ckpt.to(dev), cpu.summary.to(dev)};
  DecodeIndex index = Index();
  index.closing_state_slots = {1};
  index.closing_dst_slots = {5};
  DecodeInputs in;
  in.q = Wave({kB, kHeads, kDk}, 0.5, 1.0);
  in.q = in.q / in.q.norm(2, -1, true);
  in.k = Wave({kB, kHeads, kDk}, 0.6, 1.0);
  in.k = in.k / in.k.norm(2, -1, true);
  in.v = Wave({kB, kHeads, kDv}, 0.7, 1.0);
  in.u = Wave({kB, kHeads, kDk}, 0.8, 1.0);
  in.beta = at::full({kB, kHeads}, 0.5f);
  const DecodeInputs in_gpu{in.q.to(dev), in.k.to(dev), in.v.to(dev),
                            in.u.to(dev), at::Tensor(), in.beta.to(dev)};

  auto cpu_batch = DecodeBatch::Create(p, cpu, index);
  auto gpu_batch = DecodeBatch::Create(p, gpu, index);
  ASSERT_TRUE(cpu_batch.ok()) << cpu_batch.status();
  ASSERT_TRUE(gpu_batch.ok()) << gpu_batch.status();
  at::Tensor cpu_w, gpu_w;
  auto cpu_out = DecodeLayer(p, cpu, 1, *cpu_batch, in, &cpu_w);
  auto gpu_out = DecodeLayer(p, gpu, 1, *gpu_batch, in_gpu, &gpu_w);
  ASSERT_TRUE(cpu_out.ok()) << cpu_out.status();
  ASSERT_TRUE(gpu_out.ok()) << gpu_out.status();
  ASSERT_EQ(gpu_out->sizes(), at::IntArrayRef({kB, kHeads, kDv}));
  EXPECT_TRUE(at::allclose(gpu_out->cpu(), *cpu_out, 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(gpu_w.cpu(), cpu_w, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(gpu.state.cpu(), cpu.state, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(gpu.ckpt.cpu(), cpu.ckpt, 1e-5, 1e-6));
  EXPECT_TRUE(gpu.key_sum.cpu().equal(cpu.key_sum));
  EXPECT_TRUE(gpu.summary.cpu().equal(cpu.summary));
}

}  // namespace
}  // namespace mcserve::kernels
