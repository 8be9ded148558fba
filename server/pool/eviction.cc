#include "server/pool/eviction.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "absl/strings/str_cat.h"

namespace mcserve::pool {
namespace {

// Who uses a checkpoint: eviction treats a shared checkpoint as running if
// any of its sessions runs, and as recent as its most recent user.
struct Use {
  bool running = false;
  absl::Time last_used = absl::InfinitePast();
  const Holder* holder = nullptr;  // one of them, for the stats
};

std::unordered_map<CkptId, Use> Uses(absl::Span<const Holder> holders) {
  std::unordered_map<CkptId, Use> uses;
  for (const Holder& h : holders) {
    for (CkptId id : *h.ckpts) {
      Use& u = uses[id];
      u.running = u.running || h.running;
      u.last_used = std::max(u.last_used, h.last_used);
      if (u.holder == nullptr) u.holder = &h;
    }
  }
  return uses;
}

struct Victim {
  CkptId id = -1;
  const Holder* holder = nullptr;
};

// Steps 1 and 2: up to `n` checkpoints to offload, best victims first.
std::vector<Victim> OffloadVictims(const CheckpointPool& pool, absl::Span<const Holder> holders,
                                   size_t n) {
  const std::unordered_map<CkptId, Use> uses = Uses(holders);
  struct Candidate {
    Victim v;
    bool running;
    absl::Time last_used;
    float usefulness;
  };
  std::vector<Candidate> c;
  for (const Holder& h : holders) {
    for (CkptId id : *h.ckpts) {
      if (pool.tier(id) != Tier::kDevice || pool.pinned(id)) continue;
      const Use& u = uses.at(id);
      if (u.holder != &h) continue;  // a shared checkpoint is listed once
      c.push_back({{id, u.holder}, u.running, u.last_used, pool.usefulness(id)});
    }
  }
  // Idle before running; idle by least recent use (then oldest checkpoint
  // first), running by least usefulness.
  std::stable_sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
    if (a.running != b.running) return !a.running;
    if (!a.running) return a.last_used < b.last_used;
    return a.usefulness < b.usefulness;
  });
  std::vector<Victim> out;
  for (size_t i = 0; i < c.size() && out.size() < n; ++i) out.push_back(c[i].v);
  return out;
}

bool Lossable(const CheckpointPool& pool, CkptId id) {
  return pool.refs(id) == 1 && !pool.pinned(id);
}

void MarkLossy(const Holder& h) { h.stats->lossy = true; }

// Drops the least useful unshared checkpoint among `holders`. False if none.
bool DropOne(CheckpointPool& pool, absl::Span<const Holder> holders) {
  const Holder* best_h = nullptr;
  size_t best_i = 0;
  float best = std::numeric_limits<float>::infinity();
  for (const Holder& h : holders) {
    for (size_t i = 0; i < h.ckpts->size(); ++i) {
      const CkptId id = (*h.ckpts)[i];
      if (Lossable(pool, id) && pool.usefulness(id) < best) {
        best = pool.usefulness(id), best_h = &h, best_i = i;
      }
    }
  }
  if (best_h == nullptr) return false;
  const CkptId id = (*best_h->ckpts)[best_i];
  best_h->ckpts->erase(best_h->ckpts->begin() + static_cast<std::ptrdiff_t>(best_i));
  pool.Unref(id).IgnoreError();  // alive: the holder held it
  pool.CountDrop();
  ++best_h->stats->dropped;
  MarkLossy(*best_h);
  return true;
}

// Merges the adjacent unshared pair with the smallest summed usefulness
// among `holders` (into the older one's slot, whichever tier). False if none.
bool MergeOne(CheckpointPool& pool, absl::Span<const Holder> holders) {
  const Holder* best_h = nullptr;
  size_t best_i = 0;
  float best = std::numeric_limits<float>::infinity();
  for (const Holder& h : holders) {
    const std::vector<CkptId>& c = *h.ckpts;
    for (size_t i = 0; i + 1 < c.size(); ++i) {
      if (!Lossable(pool, c[i]) || !Lossable(pool, c[i + 1])) continue;
      const float score = pool.usefulness(c[i]) + pool.usefulness(c[i + 1]);
      if (score < best) best = score, best_h = &h, best_i = i;
    }
  }
  if (best_h == nullptr) return false;
  std::vector<CkptId>& c = *best_h->ckpts;
  pool.Merge(c[best_i], c[best_i + 1]);
  c.erase(c.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
  ++best_h->stats->merged;
  MarkLossy(*best_h);
  return true;
}

bool LossyStep(CheckpointPool& pool, absl::Span<const Holder> holders, LossyPolicy policy) {
  switch (policy) {
    case LossyPolicy::kNone:
      return false;
    case LossyPolicy::kDrop:
      return DropOne(pool, holders);
    case LossyPolicy::kMerge:
      return MergeOne(pool, holders);
  }
  return false;
}

absl::Status Exhausted(const CheckpointPool& pool, LossyPolicy policy, absl::string_view why) {
  return absl::ResourceExhaustedError(
      absl::StrCat("checkpoint pool is full: ", pool.device_used(), "/", pool.device_capacity(),
                   " device slots and ", pool.host_used(), "/", pool.host_capacity(),
                   " host slots in use, ", why, " (lossy eviction: ", LossyPolicyName(policy),
                   "); raise --checkpoint_pool or --host_pool, or delete sessions"));
}

}  // namespace

absl::StatusOr<LossyPolicy> ParseLossyPolicy(absl::string_view name) {
  if (name == "none") return LossyPolicy::kNone;
  if (name == "drop") return LossyPolicy::kDrop;
  if (name == "merge") return LossyPolicy::kMerge;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown lossy eviction policy '", name, "' (none, drop or merge)"));
}

absl::string_view LossyPolicyName(LossyPolicy p) {
  switch (p) {
    case LossyPolicy::kNone:
      return "none";
    case LossyPolicy::kDrop:
      return "drop";
    case LossyPolicy::kMerge:
      return "merge";
  }
  return "?";
}

absl::Status FreeDeviceSlots(CheckpointPool& pool, absl::Span<const Holder> holders,
                             LossyPolicy policy, int32_t batch, Reclaimer* cache) {
  // Each pass offloads up to `batch` victims (as the host has room); with
  // nothing offloadable a lossy step frees a slot in one of the tiers. The
  // bound only guards against a logic error.
  for (int pass = 0; pass <= 4 * (pool.host_capacity() + pool.device_capacity()) + 4; ++pass) {
    if (!pool.device_full()) return absl::OkStatus();
    if (cache != nullptr && cache->ReclaimSlot(Tier::kDevice)) continue;
    const int32_t room = pool.host_capacity() - pool.host_used();
    if (room > 0) {
      const std::vector<Victim> victims =
          OffloadVictims(pool, holders, static_cast<size_t>(std::max(1, std::min(batch, room))));
      if (victims.empty()) {
        return Exhausted(pool, policy, "every device checkpoint is being read this step");
      }
      for (const Victim& v : victims) {
        pool.Offload(v.id);
        ++v.holder->stats->offloaded;
      }
      continue;
    }
    if (cache != nullptr && cache->ReclaimSlot(Tier::kHost)) continue;
    if (!LossyStep(pool, holders, policy)) {
      // Checkpoints the cache shares are not lossable: give the cache up first.
      if (policy != LossyPolicy::kNone && cache != nullptr && cache->ReleaseOne()) continue;
      return Exhausted(pool, policy, "and nothing can be offloaded or dropped");
    }
  }
  return absl::InternalError("eviction made no progress");
}

absl::Status ShrinkHolder(CheckpointPool& pool, const Holder& holder, size_t max_ckpts,
                          LossyPolicy policy, Reclaimer* cache) {
  while (holder.ckpts->size() > max_ckpts) {
    if (!LossyStep(pool, absl::MakeConstSpan(&holder, 1), policy)) {
      if (policy != LossyPolicy::kNone && cache != nullptr && cache->ReleaseOne()) continue;
      return absl::ResourceExhaustedError(
          absl::StrCat("session '", holder.id, "' holds ", holder.ckpts->size(),
                       " checkpoints but the device tier has only ", max_ckpts,
                       " slots for it (lossy eviction: ", LossyPolicyName(policy),
                       "); raise --checkpoint_pool or use --lossy_eviction=drop|merge"));
    }
  }
  return absl::OkStatus();
}

}  // namespace mcserve::pool
