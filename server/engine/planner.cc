#include "server/engine/planner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace mcserve::engine {

int64_t CheckpointsAfter(const MemoryShape& m, int64_t position, int64_t held, int64_t count) {
  if (!m.keeps_checkpoints) return 0;
  const int64_t c = m.segment_length;
  return held + (position + count) / c - position / c;
}

absl::Status FitsDevice(const MemoryShape& m, int64_t position, int64_t held, int64_t count,
                        bool lossy_allowed) {
  const int64_t after = CheckpointsAfter(m, position, held, count);
  if (lossy_allowed || after <= m.device_slots) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("this prompt would leave the session with ", after,
                   " checkpoints, more than the device ", "tier's ", m.device_slots,
                   " slots (raise --checkpoint_pool, or allow --lossy_eviction=drop|merge)"));
}

int64_t PrefillPiece(const MemoryShape& m, int64_t position, int64_t held, int64_t left,
                     bool stop_at_boundary) {
  const int64_t c = m.segment_length;
  const int64_t to_boundary = c - position % c;
  int64_t n = left;
  if (stop_at_boundary) n = std::min(n, to_boundary);
  if (m.keeps_checkpoints) {
    // Closing k segments needs k device slots beside the `held` ones read.
    const int64_t room = std::max<int64_t>(m.device_slots - held, 1);
    n = std::min(n, to_boundary + (room - 1) * c);
  }
  return std::max<int64_t>(n, 1);
}

std::vector<std::vector<size_t>> GroupDecodes(absl::Span<const int64_t> needs, int64_t device_slots,
                                              bool reverse) {
  std::vector<std::vector<size_t>> groups;
  int64_t used = 0;
  for (size_t i = 0; i < needs.size(); ++i) {
    if (groups.empty() || (!groups.back().empty() && used + needs[i] > device_slots)) {
      groups.emplace_back();
      used = 0;
    }
    groups.back().push_back(i);
    used += needs[i];
  }
  if (groups.size() > 1 && reverse) std::reverse(groups.begin(), groups.end());
  return groups;
}

}  // namespace mcserve::engine
