// Shapes and modes of one MC mixer layer, shared by every kernel and by the
// model config. Framework-free: plain C++ usable from host and device code.
#ifndef MCSERVE_SERVER_KERNELS_MC_PARAMS_H_
#define MCSERVE_SERVER_KERNELS_MC_PARAMS_H_

#include <cstdint>

#include "server/kernels/hd.h"

namespace mcserve::kernels {

// How the online memory S (dk x dv per head) absorbs a token (mc-model.md §4).
enum class MemoryRule : int32_t { kHebbian = 0, kDelta = 1 };
// How cached checkpoints are mixed into the read (mc-model.md §5).
enum class Aggregation : int32_t {
  kNone = 0,
  kResidual = 1,
  kMean = 2,
  kGrm = 3,
  kSoup = 4,
  kSsc = 5,
};
// What happens to S when a segment closes.
enum class Boundary : int32_t { kContinue = 0, kReset = 1 };
// Storage type of checkpoint states. Online state and summaries are float32.
enum class CkptDtype : int32_t { kFloat32 = 0, kBFloat16 = 1 };

// A layer's memory is one matrix S per head, head_dim x value_dim: rows over
// key dimensions, columns over value dimensions. Queries, keys, router
// inputs and summaries have head_dim entries; values and reads value_dim.
struct McLayerParams {
  int32_t n_heads = 0;
  int32_t head_dim = 0;   // key dimensions dk
  int32_t value_dim = 0;  // value dimensions dv; 0: equal to head_dim
  MemoryRule rule = MemoryRule::kHebbian;
  bool scalar_decay = false;
  Aggregation aggregation = Aggregation::kNone;
  Boundary boundary = Boundary::kContinue;
  int32_t segment_length = 1;
  int32_t top_k = 0;  // ssc only
  float gate_scale = 1.0f;
  CkptDtype ckpt_dtype = CkptDtype::kFloat32;
};

// The value dimensions of a head (dv).
MCSERVE_HD int32_t ValueDim(const McLayerParams& p) {
  return p.value_dim > 0 ? p.value_dim : p.head_dim;
}

// True when the aggregation reads gate logits (needs u and summaries).
MCSERVE_HD bool IsGated(Aggregation a) {
  return a == Aggregation::kGrm || a == Aggregation::kSoup || a == Aggregation::kSsc;
}

// True when the aggregation keeps a cache of checkpoints at all.
MCSERVE_HD bool KeepsCheckpoints(Aggregation a) { return a != Aggregation::kNone; }

// True when the token at 0-based `position` closes its segment.
MCSERVE_HD bool ClosesSegment(int64_t position, int32_t segment_length) {
  return (position + 1) % segment_length == 0;
}

}  // namespace mcserve::kernels

#endif  // MCSERVE_SERVER_KERNELS_MC_PARAMS_H_
