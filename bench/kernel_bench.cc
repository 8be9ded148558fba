// mcserve-kernel-bench: one MC layer's decode step on a GPU, in one run:
//   (a) the fused CUDA kernels against the same step as LibTorch eager ops;
//   (b) achieved bytes/s against a measured device-to-device copy;
//   (c) MC (grm, ssc k=4) against aggregation none (the cost of the cache);
//   (d) per-token time and memory per session against softmax attention
//       (scaled_dot_product_attention over a bf16 KV cache) of the same width
//       and context.
// The bytes floor of a step is stated before it is timed: per session, the
// float32 online state read and written, each bf16 checkpoint read once, the
// float32 summaries read (ssc reads all summaries but only top_k states).
// Inputs rotate over enough copies that a step's working set is not in L2;
// batches up to --graph_batch are timed as CUDA graphs (launch-bound).
//
//   mcserve-kernel-bench [--heads=16] [--head_dim=64] [--segment=256]
//                        [--contexts=4096,16384,65536] [--batches=1,8,64,256]
#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <torch/version.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/int_list.h"
#include "server/kernels/mc_decode.h"
#include "server/kernels/mc_decode_cuda.h"
#include "server/util/flags_help.h"

ABSL_FLAG(int32_t, heads, 16, "Heads per layer");
ABSL_FLAG(int32_t, head_dim, 64, "Head dimension d (state d x d per head)");
ABSL_FLAG(int32_t, segment, 256, "Segment length C: one checkpoint per C tokens");
ABSL_FLAG(std::string, contexts, "4096,16384,65536", "Context lengths");
ABSL_FLAG(std::string, batches, "1,8,64,256", "Sessions per step");
ABSL_FLAG(int32_t, graph_batch, 16, "Time batches up to this size as CUDA graphs");
ABSL_FLAG(double, max_gib, 24, "Skip a case whose buffers exceed this many GiB");
ABSL_FLAG(int32_t, iters, 50, "Timed steps per case");

namespace mcserve::bench {
namespace {

using kernels::Aggregation;
using kernels::CkptDtype;
using kernels::McLayerParams;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr int64_t kL2Bytes = 50 << 20;  // H100: 50 MB; rotate past twice that

#define CUDA_OK(expr)                                                  \
  do {                                                                 \
    const cudaError_t e_ = (expr);                                     \
    if (e_ != cudaSuccess) {                                           \
      std::fprintf(stderr, "%s: %s\n", #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                    \
    }                                                                  \
  } while (0)

at::TensorOptions Cuda(at::ScalarType t) { return at::TensorOptions(at::kCUDA).dtype(t); }

at::Tensor L2Normalized(const at::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-6); }

// The stream the fused kernels are timed on (graph capture needs one that is
// not the legacy default stream).
cudaStream_t g_stream = nullptr;

// Milliseconds per call of `step` on `stream`, as a CUDA graph of `iters`
// calls when `graph`, else as plain launches.
double TimeMs(const std::function<void(int, cudaStream_t)>& step, cudaStream_t stream, int iters,
              bool graph) {
  cudaEvent_t start, stop;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) step(i, stream);  // warm up
  cudaGraphExec_t exec = nullptr;
  if (graph) {
    cudaGraph_t g;
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < iters; ++i) step(i, stream);
    CUDA_OK(cudaStreamEndCapture(stream, &g));
    CUDA_OK(cudaGraphInstantiate(&exec, g, 0));
    CUDA_OK(cudaGraphDestroy(g));
    CUDA_OK(cudaGraphLaunch(exec, stream));  // warm up the graph
  }
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaEventRecord(start, stream));
  if (graph) {
    CUDA_OK(cudaGraphLaunch(exec, stream));
  } else {
    for (int i = 0; i < iters; ++i) step(i, stream);
  }
  CUDA_OK(cudaEventRecord(stop, stream));
  CUDA_OK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
  if (exec != nullptr) CUDA_OK(cudaGraphExecDestroy(exec));
  CUDA_OK(cudaEventDestroy(start));
  CUDA_OK(cudaEventDestroy(stop));
  return ms / iters;
}

// Practical bandwidth limit: a device-to-device copy of 2 GiB, counted as
// bytes read plus bytes written.
double CopyBandwidth() {
  const int64_t n = int64_t{1} << 31;
  at::Tensor src = at::empty({n}, Cuda(at::kByte)), dst = at::empty({n}, Cuda(at::kByte));
  const double ms = TimeMs(
      [&](int, cudaStream_t s) {
        CUDA_OK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), n, cudaMemcpyDeviceToDevice, s));
      },
      nullptr, 10, false);
  return 2.0 * n / (ms * 1e-3);
}

// One layer's MC state for `rot` rotations of a batch: pools plus the
// index arrays of each rotation, all on the GPU.
struct McSetup {
  McLayerParams p;
  int64_t batch = 0, n = 0, rot = 1;
  at::Tensor state, key_sum, ckpt, summary, q, k, v, u, alpha;
  std::vector<at::Tensor> slots, positions, table, counts;
  at::Tensor out, workspace;
  kernels::McDecodeCudaPlan plan;

  kernels::McDecodeArgs Args(int r) const {
    kernels::McDecodeArgs a;
    a.batch = static_cast<int32_t>(batch);
    a.q = q.data_ptr<float>();
    a.k = k.data_ptr<float>();
    a.v = v.data_ptr<float>();
    a.u = u.data_ptr<float>();
    a.alpha = alpha.data_ptr<float>();
    a.state = state.data_ptr<float>();
    a.state_slot_stride = int64_t{p.n_heads} * p.head_dim * p.head_dim;
    a.key_sum = key_sum.data_ptr<float>();
    a.key_sum_slot_stride = int64_t{p.n_heads} * p.head_dim;
    a.state_slots = slots[r].data_ptr<int32_t>();
    a.positions = positions[r].data_ptr<int64_t>();
    a.ckpt = ckpt.data_ptr();
    a.ckpt_slot_stride = a.state_slot_stride;
    a.summary = summary.data_ptr<float>();
    a.summary_slot_stride = a.key_sum_slot_stride;
    a.ckpt_table = table[r].data_ptr<int32_t>();
    a.ckpt_table_stride = std::max<int64_t>(n, 1);
    a.ckpt_counts = counts[r].data_ptr<int32_t>();
    a.out = out.data_ptr<float>();
    return a;
  }
};

// Bytes one decode step must move at least (see the file comment).
double FloorBytes(const McLayerParams& p, int64_t batch, int64_t n) {
  const double hdd = static_cast<double>(p.n_heads) * p.head_dim * p.head_dim,
               hd = static_cast<double>(p.n_heads) * p.head_dim;
  int64_t read = n;
  if (p.aggregation == Aggregation::kNone) read = 0;
  if (p.aggregation == Aggregation::kSsc) read = std::min<int64_t>(n, p.top_k);
  const double summaries = p.aggregation == Aggregation::kNone ? 0 : n * hd * 4;
  return batch * (hdd * 4 * 2 + read * hdd * 2 + summaries + hd * 4 * 6);
}

McSetup MakeSetup(const McLayerParams& p, int64_t batch, int64_t n) {
  McSetup s;
  s.p = p;
  s.batch = batch;
  s.n = p.aggregation == Aggregation::kNone ? 0 : n;
  const int64_t H = p.n_heads, d = p.head_dim;
  s.rot = std::max<int64_t>(1, 2 * kL2Bytes / std::max(1.0, FloorBytes(p, batch, n)) + 1);
  const int64_t slots = s.rot * batch, ckpts = std::max<int64_t>(slots * s.n, 1);
  s.state = at::randn({slots, H, d, d}, Cuda(at::kFloat)) * 0.1;
  s.key_sum = at::randn({slots, H, d}, Cuda(at::kFloat));
  s.ckpt = (at::randn({ckpts, H, d, d}, Cuda(at::kFloat)) * 0.1).to(at::kBFloat16);
  s.summary = at::randn({ckpts, H, d}, Cuda(at::kFloat));
  s.q = L2Normalized(at::randn({batch, H, d}, Cuda(at::kFloat)));
  s.k = L2Normalized(at::randn({batch, H, d}, Cuda(at::kFloat)));
  s.v = at::randn({batch, H, d}, Cuda(at::kFloat));
  s.u = at::randn({batch, H, d}, Cuda(at::kFloat));
  s.alpha = at::full({batch, H}, 0.9f, Cuda(at::kFloat));
  s.out = at::empty({batch, H, d}, Cuda(at::kFloat));
  const int64_t stride = std::max<int64_t>(s.n, 1);
  for (int64_t r = 0; r < s.rot; ++r) {
    s.slots.push_back(at::arange(r * batch, (r + 1) * batch, Cuda(at::kInt)));
    s.positions.push_back(at::full({batch}, s.n * p.segment_length + 7, Cuda(at::kLong)));
    s.table.push_back(at::arange(r * batch * stride, (r + 1) * batch * stride, Cuda(at::kInt))
                          .view({batch, stride}));
    s.counts.push_back(at::full({batch}, s.n, Cuda(at::kInt)));
  }
  int32_t sms = 0;
  CUDA_OK(kernels::CudaSmCount(0, &sms));
  CUDA_OK(kernels::PlanMcDecodeCuda(p, batch, stride, sms, &s.plan));
  s.workspace = at::empty({s.plan.workspace_bytes}, Cuda(at::kByte));
  CUDA_OK(cudaDeviceSynchronize());
  return s;
}

double FusedMs(const McSetup& s, bool graph) {
  return TimeMs(
      [&](int i, cudaStream_t st) {
        CUDA_OK(kernels::McDecodeCuda(s.p, s.Args(i % s.rot), s.plan, s.workspace.data_ptr(), st));
      },
      g_stream, absl::GetFlag(FLAGS_iters), graph);
}

// The same grm step as LibTorch eager ops: gather by slot, update, read,
// gates from the summaries, weighted checkpoint read, scatter the state back.
double EagerMs(const McSetup& s) {
  const int64_t B = s.batch, n = s.n, H = s.p.n_heads, d = s.p.head_dim;
  auto step = [&](int i, cudaStream_t) {
    const int r = i % s.rot;
    const at::Tensor slots = s.slots[r].to(at::kLong), table = s.table[r].to(at::kLong).view(-1);
    at::Tensor st = s.state.index_select(0, slots);
    st = s.alpha.view({B, H, 1, 1}) * st + s.k.unsqueeze(-1) * s.v.unsqueeze(-2);
    s.state.index_copy_(0, slots, st);
    const at::Tensor ks = s.key_sum.index_select(0, slots) + s.k;
    s.key_sum.index_copy_(0, slots, ks);
    const at::Tensor read_on = at::einsum("bhij,bhi->bhj", {st, s.q});
    const at::Tensor z_on = (s.u * ks).sum(-1, true) / 8.0;
    const at::Tensor summ = s.summary.index_select(0, table).view({B, n, H, d});
    const at::Tensor z = at::einsum("bnhd,bhd->bhn", {summ, s.u});
    const at::Tensor g = at::softmax(at::cat({z_on, z}, -1), -1);
    const at::Tensor m = s.ckpt.index_select(0, table).view({B, n, H, d, d}).to(at::kFloat);
    const at::Tensor reads = at::einsum("bnhij,bhi->bhnj", {m, s.q});
    const at::Tensor out =
        g.narrow(-1, 0, 1) * read_on + at::einsum("bhn,bhnj->bhj", {g.narrow(-1, 1, n), reads});
    (void)out;
  };
  return TimeMs(step, nullptr, std::max(5, absl::GetFlag(FLAGS_iters) / 5), false);
}

// Softmax attention decode of one token over a bf16 KV cache of `ctx`.
double SdpaMs(int64_t batch, int64_t ctx, int64_t H, int64_t d) {
  const at::Tensor q = at::randn({batch, H, 1, d}, Cuda(at::kBFloat16));
  const at::Tensor kc = at::randn({batch, H, ctx, d}, Cuda(at::kBFloat16));
  const at::Tensor vc = at::randn({batch, H, ctx, d}, Cuda(at::kBFloat16));
  auto step = [&](int, cudaStream_t) {
#if TORCH_VERSION_MAJOR >= 2
    (void)at::scaled_dot_product_attention(q, kc, vc);
#else
    (void)at::matmul(at::softmax(at::matmul(q, kc.transpose(-1, -2)), -1), vc);
#endif
  };
  return TimeMs(step, nullptr, absl::GetFlag(FLAGS_iters), false);
}

McLayerParams Layer(Aggregation agg, int32_t top_k) {
  McLayerParams p;
  p.n_heads = absl::GetFlag(FLAGS_heads);
  p.head_dim = absl::GetFlag(FLAGS_head_dim);
  p.scalar_decay = true;
  p.aggregation = agg;
  p.top_k = top_k;
  p.segment_length = absl::GetFlag(FLAGS_segment);
  p.ckpt_dtype = CkptDtype::kBFloat16;
  return p;
}

void RunCase(int64_t batch, int64_t ctx, double copy_bw) {
  const McLayerParams grm = Layer(Aggregation::kGrm, 0);
  const int64_t H = grm.n_heads, d = grm.head_dim, n = ctx / grm.segment_length;
  const double mc_session = n * (H * d * d * 2.0 + H * d * 4.0) + H * d * d * 4.0 + H * d * 4.0;
  const double kv_session = 2.0 * H * ctx * d * 2;
  const double max_bytes = absl::GetFlag(FLAGS_max_gib) * kGiB;
  const bool graph = batch <= absl::GetFlag(FLAGS_graph_batch);
  if (batch * mc_session * 2 > max_bytes) {
    std::printf("| %lld | %lld | %lld | skipped: MC state over --max_gib |\n", (long long)batch,
                (long long)ctx, (long long)n);
    return;
  }
  const double floor = FloorBytes(grm, batch, n);
  const McSetup s = MakeSetup(grm, batch, n);
  const double fused = FusedMs(s, graph);
  const bool eager_fits = batch * n * H * d * d * 4.0 * 3 < max_bytes;
  const double eager = eager_fits ? EagerMs(s) : 0;
  const double none = FusedMs(MakeSetup(Layer(Aggregation::kNone, 0), batch, 0), graph);
  const double ssc = FusedMs(MakeSetup(Layer(Aggregation::kSsc, 4), batch, n), graph);
  const bool kv_fits = batch * kv_session * 1.5 < max_bytes;
  const double sdpa = kv_fits ? SdpaMs(batch, ctx, H, d) : 0;
  const double bw = floor / (fused * 1e-3);
  std::printf(
      "| %lld | %lld | %lld | %.1f MB | %.1f | %s | %.0f GB/s (%.2f of copy) | %.1f (%.2fx) | %.1f "
      "(%.2fx) | %s | %.2f MB / %.2f MB (%.2fx) |\n",
      (long long)batch, (long long)ctx, (long long)n, floor / 1e6, fused * 1e3,
      eager_fits ? (std::to_string(eager * 1e3).substr(0, 7) + " (" +
                    std::to_string(eager / fused).substr(0, 5) + "x)")
                       .c_str()
                 : "over --max_gib",
      bw / 1e9, bw / copy_bw, none * 1e3, fused / none, ssc * 1e3, fused / ssc,
      kv_fits ? (std::to_string(sdpa * 1e3).substr(0, 7) + " (" +
                 std::to_string(sdpa / fused).substr(0, 5) + "x)")
                    .c_str()
              : "over --max_gib",
      mc_session / 1e6, kv_session / 1e6, kv_session / mc_session);
  CUDA_OK(cudaDeviceSynchronize());
}

int Main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "mcserve-kernel-bench: no CUDA device\n");
    return 2;
  }
  CUDA_OK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  cudaDeviceProp prop;
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  const double copy_bw = CopyBandwidth();
  std::printf("device: %s; device-to-device copy %.0f GB/s (read + write)\n", prop.name,
              copy_bw / 1e9);
  std::printf(
      "one layer, %d heads x d=%d, segment %d, bf16 checkpoints, scalar decay, hebbian; "
      "times in microseconds per decode step\n\n",
      absl::GetFlag(FLAGS_heads), absl::GetFlag(FLAGS_head_dim), absl::GetFlag(FLAGS_segment));
  std::printf(
      "| batch | context | ckpts | floor bytes | fused grm | eager grm (x fused) | "
      "achieved | none (grm/none) | ssc k=4 (grm/ssc) | sdpa (x fused) | "
      "per session MC / KV |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t ctx : IntList(absl::GetFlag(FLAGS_contexts))) {
    for (int64_t b : IntList(absl::GetFlag(FLAGS_batches))) RunCase(b, ctx, copy_bw);
  }
  return 0;
}

}  // namespace
}  // namespace mcserve::bench

int main(int argc, char** argv) {
  mcserve::SetFlagsHelp("mcserve-kernel-bench [--heads=16 --head_dim=64 --contexts=4096,16384 ...]",
                        {"bench/kernel_bench.cc"});
  absl::ParseCommandLine(argc, argv);
  return mcserve::bench::Main();
}
