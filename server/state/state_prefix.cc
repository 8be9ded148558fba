// StateStore's prefix cache: publishing boundary states, matching a new
// sequence's tokens, adopting a match, and giving entries up.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/kernels/mc_params.h"
#include "server/state/state_store.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace mcserve::state {

int64_t StateStore::prefix_match_grid() const {
  return publishes_at_every_boundary() ? model_.config().segment_length : model_.prefill_grid();
}

PrefixMatch StateStore::Lookup(absl::Span<const int32_t> tokens, int64_t max_tokens,
                               uint64_t root) {
  PrefixMatch m;
  if (!prefix_cache_enabled()) return m;
  const int64_t c = model_.config().segment_length;
  query_tokens_ += static_cast<int64_t>(tokens.size());
  uint64_t key = root;
  for (int64_t end = c; end <= max_tokens && end <= static_cast<int64_t>(tokens.size()); end += c) {
    const PrefixEntry* e = prefix_.Find(key, tokens.subspan(end - c, c));
    if (e == nullptr) break;
    key = e->key;
    m.chain.push_back(key);
    // An endpoint needs its boundary state: the block's checkpoint (which
    // every entry of a keeping model has), zero, or a stored copy.
    const bool usable = boundary_ != model::BoundaryState::kStored || e->state_slot >= 0;
    if (usable) m.tokens = end;
  }
  m.tokens -= m.tokens % prefix_match_grid();
  m.chain.resize(m.tokens / c);
  if (!m.chain.empty()) prefix_.Touch(m.chain.back());
  hit_tokens_ += m.tokens;
  return m;
}

absl::StatusOr<SeqState> StateStore::Adopt(const PrefixMatch& match, absl::string_view owner) {
  std::vector<const PrefixEntry*> chain;
  for (uint64_t key : match.chain) {
    const PrefixEntry* e = prefix_.Get(key);
    if (e == nullptr) return absl::NotFoundError("the matched prefix was evicted");
    chain.push_back(e);
  }
  if (chain.empty()) return absl::NotFoundError("no prefix matched");
  ASSIGN_OR_RETURN(SeqState s, Create(owner));  // zeroed
  const PrefixEntry& last = *chain.back();
  const int32_t slot = rec(s).slot;
  absl::Status st = Guard(owner, "rebuild a cached prefix state", [&] {
    if (boundary_ == model::BoundaryState::kCheckpoint) {
      // The memory is the block's checkpoint (float32), wherever it is.
      cache_.online[model::McModel::kMemory][slot].copy_(pool_.state(last.ckpt));
    } else if (boundary_ == model::BoundaryState::kStored) {
      for (const at::Tensor& t : cache_.online) t[slot].copy_(t[last.state_slot]);
    }
  });
  RETURN_IF_ERROR(st);
  for (const PrefixEntry* e : chain) {
    if (e->ckpt < 0) continue;
    RETURN_IF_ERROR(pool_.Ref(e->ckpt));  // `s` releases what it holds on error
    rec(s).ckpts.push_back(e->ckpt);
  }
  return s;
}

void StateStore::Publish(const SeqState& s, const TokenChain& chain) {
  if (!prefix_cache_enabled() || !chain.valid() || lossy(s)) return;
  const Record& r = rec(s);
  if (prefix_.Find(chain.key(), chain.open()) != nullptr) return;  // already cached
  const bool keeps = kernels::KeepsCheckpoints(model_.config().aggregation);
  const bool stored = boundary_ == model::BoundaryState::kStored;
  // Block i closed the sequence's checkpoint i (lossy ones are out); a
  // stored state must be the one the block ends in.
  const int64_t held = static_cast<int64_t>(r.ckpts.size());
  if (keeps && held <= chain.blocks()) return;
  if (stored && keeps && held != chain.blocks() + 1) return;
  PrefixEntry e;
  e.parent = chain.key();
  e.first = chain.blocks() == 0;
  e.tokens = chain.open();
  // Entries holding neither (aggregation none, reset) are charged their
  // tokens, so the budget bounds them too.
  const int64_t index_bytes = static_cast<int64_t>(e.tokens.size() * sizeof(int32_t)) + 64;
  e.bytes = std::max(index_bytes, (keeps ? ckpt_bytes_ : 0) + (stored ? state_bytes_ : 0));
  // A chain cut by eviction stays cut: its blocks would be unreachable.
  if (!e.first && prefix_.Get(e.parent) == nullptr) return;
  if (e.bytes > options_.prefix_cache_bytes || !MakeBudgetRoom(e.bytes, e.parent)) return;
  if (stored) {
    std::optional<int32_t> slot = slots_.Allocate();
    if (!slot) return;
    const int32_t from = r.slot;
    absl::Status st = Guard(r.owner, "store a prefix state", [&] {
      for (const at::Tensor& t : cache_.online) t[*slot].copy_(t[from]);
    });
    if (!st.ok()) {
      ReleaseSlot(*slot);
      return;
    }
    e.state_slot = *slot;
  }
  if (keeps) {
    e.ckpt = r.ckpts[chain.blocks()];
    absl::Status st = pool_.Ref(e.ckpt);
    if (!st.ok()) {
      MCSERVE_LOG(kError, "prefix cache").Kv("error", st.ToString());
      if (e.state_slot >= 0) ReleaseSlot(e.state_slot);
      return;
    }
  }
  const pool::CkptId ckpt = e.ckpt;
  const int32_t state_slot = e.state_slot;
  if (prefix_.Insert(std::move(e)) == nullptr) {     // the key belongs to another chain
    if (ckpt >= 0) pool_.Unref(ckpt).IgnoreError();  // just taken
    if (state_slot >= 0) ReleaseSlot(state_slot);
  }
}

bool StateStore::MakeBudgetRoom(int64_t bytes, uint64_t keep) {
  while (prefix_.bytes() + bytes > options_.prefix_cache_bytes) {
    // Leaves only, so that the chain being extended keeps its root.
    std::optional<uint64_t> victim = prefix_.LeastRecent(
        [&](const PrefixEntry& e) { return e.children.empty() && e.key != keep; });
    if (!victim) return false;
    ReleaseEntries(prefix_.Remove(*victim));
  }
  return true;
}

bool StateStore::ReclaimSlot(pool::Tier tier) {
  std::optional<uint64_t> victim = prefix_.LeastRecent([&](const PrefixEntry& e) {
    return e.ckpt >= 0 && pool_.refs(e.ckpt) == 1 && pool_.tier(e.ckpt) == tier &&
           !pool_.pinned(e.ckpt);
  });
  if (!victim) return false;
  ReleaseEntries(prefix_.Remove(*victim));
  return true;
}

bool StateStore::ReleaseOne() {
  std::optional<uint64_t> victim = prefix_.LeastRecent([](const PrefixEntry&) { return true; });
  if (!victim) return false;
  ReleaseEntries(prefix_.Remove(*victim));
  return true;
}

void StateStore::ReleaseEntries(std::vector<PrefixEntry> gone) {
  for (const PrefixEntry& e : gone) {
    if (e.ckpt >= 0) {
      absl::Status st = pool_.Unref(e.ckpt);
      if (!st.ok()) {
        MCSERVE_LOG(kError, "prefix cache").Kv("error", st.ToString());
      }
    }
    if (e.state_slot >= 0) ReleaseSlot(e.state_slot);
  }
}

void StateStore::ClearPrefixCache() {
  std::vector<uint64_t> roots;
  for (const auto& [key, e] : prefix_.entries()) {
    if (e.first) roots.push_back(key);
  }
  for (uint64_t key : roots) ReleaseEntries(prefix_.Remove(key));
}

}  // namespace mcserve::state
