// Memory-aware planning of a step, as pure CPU logic beside the Scheduler:
// no model, no pool, no clock. The engine asks; tests call these directly.
//
//   FitsDevice       admission: a session must be able to hold every
//                    checkpoint it reads on the device at once.
//   PrefillPiece     how many of a session's prompt tokens one model call
//                    may take: no more segments closed than the device tier
//                    has room for beside the checkpoints the session holds,
//                    and (with the prefix cache) no piece past a segment
//                    boundary, so every boundary state can be published.
//   GroupDecodes     the step's decode batch split into groups whose
//                    checkpoints all fit on the device at once; when there
//                    are several, every other step runs them in reverse, so
//                    the group still resident from the step before goes
//                    first.
#ifndef MCSERVE_SERVER_ENGINE_PLANNER_H_
#define MCSERVE_SERVER_ENGINE_PLANNER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace mcserve::engine {

struct MemoryShape {
  int64_t segment_length = 1;
  bool keeps_checkpoints = true;
  int64_t device_slots = 0;  // checkpoint slots of the device tier
};

// Checkpoints a session holds after feeding `count` tokens from `position`,
// having held `held` before.
int64_t CheckpointsAfter(const MemoryShape& m, int64_t position, int64_t held, int64_t count);

// OK, or RESOURCE_EXHAUSTED saying how to make room, when a session at
// `position` holding `held` checkpoints would hold more than the device
// tier after `count` more tokens. `lossy_allowed`: a lossy policy may
// shrink it instead, so it always fits.
absl::Status FitsDevice(const MemoryShape& m, int64_t position, int64_t held, int64_t count,
                        bool lossy_allowed);

// Tokens (>= 1, <= left) the next prefill call of a session takes.
int64_t PrefillPiece(const MemoryShape& m, int64_t position, int64_t held, int64_t left,
                     bool stop_at_boundary);

// `needs[i]`: device checkpoints session i needs this step (held plus the
// one it may close). Returns groups of indices, in the order to run them.
// `reverse` flips that order when there are several groups (the caller
// alternates it from step to step).
std::vector<std::vector<size_t>> GroupDecodes(absl::Span<const int64_t> needs, int64_t device_slots,
                                              bool reverse);

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_PLANNER_H_
