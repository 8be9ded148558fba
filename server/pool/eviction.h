// Eviction: making room on the device tier of the checkpoint pool when a
// checkpoint must be written or fetched and no device slot is free.
//
// Order (FreeDeviceSlots):
//   0. release cached state nobody is using (the prefix cache, through a
//      Reclaimer): its least recently used entry whose checkpoint alone
//      holds a device slot;
//   1. offload a checkpoint of an idle session to the host tier, least
//      recently used session first (its oldest checkpoint first);
//   2. offload the least useful checkpoint of a running session (usefulness:
//      the running average of the gate weight it received); the engine
//      fetches it back before the session next reads it;
//   3. when the host tier is full too, first the Reclaimer again for a host
//      slot, then the lossy policy (releasing cached entries whenever they
//      are what keeps a checkpoint shared): kDrop removes the
//      least useful checkpoint from its session; kMerge replaces the
//      adjacent pair of one session's checkpoints with the smallest summed
//      usefulness by their mean (states and summaries). Only checkpoints no
//      other session shares are dropped or merged. The session is marked
//      lossy;
//   4. otherwise RESOURCE_EXHAUSTED, saying what is full.
// Pinned checkpoints (being read or written this step) are never touched.
#ifndef MCSERVE_SERVER_POOL_EVICTION_H_
#define MCSERVE_SERVER_POOL_EVICTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/pool/checkpoint_pool.h"

namespace mcserve::pool {

enum class LossyPolicy { kNone, kDrop, kMerge };

absl::StatusOr<LossyPolicy> ParseLossyPolicy(absl::string_view name);
absl::string_view LossyPolicyName(LossyPolicy p);

// Per-session eviction history, reported by GetSession.
struct EvictionStats {
  int64_t offloaded = 0;  // checkpoints moved to the host tier
  int64_t fetched = 0;    // moved back to the device
  int64_t dropped = 0;
  int64_t merged = 0;
  bool lossy = false;  // a drop or merge changed what the session remembers
};

// A session as eviction sees it.
struct Holder {
  absl::string_view id;        // for messages and logs
  std::vector<CkptId>* ckpts;  // oldest first; drop and merge edit it
  bool running = false;        // a request is in flight on it
  absl::Time last_used;        // for least-recently-used order
  EvictionStats* stats;
};

// Cached state that can be given up before any session loses anything.
class Reclaimer {
 public:
  virtual ~Reclaimer() = default;
  // Releases cached state so that one slot of `tier` becomes free; false
  // when nothing cached holds one alone.
  virtual bool ReclaimSlot(Tier tier) = 0;
  // Releases the least recently used cached entry, whatever it holds (so
  // that the checkpoints it shared can be dropped or merged); false when
  // nothing is cached.
  virtual bool ReleaseOne() = 0;
};

// Makes a device slot free (see the order above), or returns
// RESOURCE_EXHAUSTED. Offloads up to `batch` victims in one pass, so a
// caller that needs many slots pays for one scan of the pool, not many.
// `cache` may be null.
absl::Status FreeDeviceSlots(CheckpointPool& pool, absl::Span<const Holder> holders,
                             LossyPolicy policy, int32_t batch = 1, Reclaimer* cache = nullptr);

// For a session that alone needs more device slots than exist: applies the
// lossy policy to its own (unshared) checkpoints until it holds at most
// `max_ckpts`, releasing cached entries (`cache`, may be null) that share
// them as needed. RESOURCE_EXHAUSTED under kNone or when nothing is unshared.
absl::Status ShrinkHolder(CheckpointPool& pool, const Holder& holder, size_t max_ckpts,
                          LossyPolicy policy, Reclaimer* cache = nullptr);

}  // namespace mcserve::pool

#endif  // MCSERVE_SERVER_POOL_EVICTION_H_
