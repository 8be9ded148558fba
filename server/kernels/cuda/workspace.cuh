// The scratch one decode launch passes between its kernels, carved from the
// caller's workspace (mc_decode_cuda.h). Host and device.
#ifndef MCSERVE_SERVER_KERNELS_CUDA_WORKSPACE_CUH_
#define MCSERVE_SERVER_KERNELS_CUDA_WORKSPACE_CUH_

#include <cstdint>

#include "server/kernels/hd.h"
#include "server/kernels/mc_params.h"

namespace mcserve::kernels::cuda {

struct Workspace {
  float* weight = nullptr;    // [B, H, max_n] gate weight of each table entry (0: unread)
  int32_t* sel = nullptr;     // [B, H, top_k] ssc: the selected table entries
  float* sel_z = nullptr;     // [B, H, top_k] ssc: their logits
  int32_t* n_read = nullptr;  // [B, H] entries the read kernel walks (ssc: selected)
  float* partial = nullptr;   // [splits, B, H, dv] checkpoint reads per split
};

// Entries of sel / sel_z per (session, head): top_k for ssc, none otherwise.
MCSERVE_HD int64_t SelectionSlots(const McLayerParams& p) {
  return p.aggregation == Aggregation::kSsc && p.top_k > 0 ? p.top_k : 0;
}

inline int64_t AlignUp(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// Lays the workspace out from `base` (or just sizes it when base is null);
// returns the bytes used.
inline int64_t CarveWorkspace(void* base, int64_t batch, int64_t heads, int64_t value_dim,
                              int64_t max_n, int64_t top_k, int64_t splits, Workspace* ws) {
  char* p = static_cast<char*>(base);
  int64_t off = 0;
  auto take = [&](int64_t bytes) -> void* {
    void* at = p == nullptr ? nullptr : p + off;
    off += AlignUp(bytes > 0 ? bytes : 1);
    return at;
  };
  const int64_t bh = batch * heads;
  ws->weight = static_cast<float*>(take(bh * max_n * 4));
  ws->sel = static_cast<int32_t*>(take(bh * top_k * 4));
  ws->sel_z = static_cast<float*>(take(bh * top_k * 4));
  ws->n_read = static_cast<int32_t*>(take(bh * 4));
  ws->partial = static_cast<float*>(take(splits * bh * value_dim * 4));
  return off;
}

}  // namespace mcserve::kernels::cuda

#endif  // MCSERVE_SERVER_KERNELS_CUDA_WORKSPACE_CUH_
