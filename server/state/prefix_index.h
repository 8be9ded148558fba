// The prefix cache's index: which segment-boundary states are cached, under
// a hash chain of the tokens before them (vLLM's block hashes, one block per
// MC segment), and in what order they are given up.
//
// An entry stands for one block: the tokens of segment i of a sequence whose
// earlier segments are its parent's chain. Its key is
// BlockHash(parent key, block tokens); the block's tokens are kept and
// compared on every match, so two chains whose hashes collide never alias.
// The index holds metadata only; the state store owns the references the
// entries name (a checkpoint, an online-state slot) and releases them.
//
// Order of release: least recently used first (a match touches the whole
// matched chain). Removing an entry removes its descendants too (they are
// unreachable without it).
// Thread-compatible: the engine thread only.
#ifndef MCSERVE_SERVER_STATE_PREFIX_INDEX_H_
#define MCSERVE_SERVER_STATE_PREFIX_INDEX_H_

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/pool/checkpoint_pool.h"

namespace mcserve::state {

// The parent key of a sequence's first block.
inline constexpr uint64_t kRootKey = 0x6d63736572766531ull;  // "mcserve1"

// The root of the chains of one cache scope: kRootKey for "", a key of its
// own for any other scope (an owner, engine/owner.h), so that sequences of
// two scopes never match each other's entries.
uint64_t RootKey(absl::string_view scope);

// Key of a block of `tokens` whose earlier blocks hash to `parent`.
uint64_t BlockHash(uint64_t parent, absl::Span<const int32_t> tokens);

struct PrefixEntry {
  uint64_t key = 0;
  uint64_t parent = kRootKey;
  bool first = true;            // the chain's first block: `parent` is a root
  std::vector<int32_t> tokens;  // the block's own tokens
  pool::CkptId ckpt = -1;       // the block's checkpoint (a reference), when kept
  int32_t state_slot = -1;      // the boundary's online state (a reference), when stored
  int64_t bytes = 0;            // charged to the cache's budget
  uint64_t last_use = 0;
  std::vector<uint64_t> children;
};

class PrefixIndex {
 public:
  // The entry for block `tokens` after the chain `parent`, or null.
  const PrefixEntry* Find(uint64_t parent, absl::Span<const int32_t> tokens) const;
  const PrefixEntry* Get(uint64_t key) const;
  // Adds `e` (its key computed here) as the most recently used entry. The
  // parent must be present unless e.first; null (nothing
  // added) when it is not, or when the key is taken by another chain.
  const PrefixEntry* Insert(PrefixEntry e);
  // Marks the chain ending at `key` (and its ancestors) used now.
  void Touch(uint64_t key);
  // Removes `key` and its descendants; returns them so that their
  // references can be released.
  std::vector<PrefixEntry> Remove(uint64_t key);
  // The least recently used entry for which `pred` holds.
  std::optional<uint64_t> LeastRecent(absl::FunctionRef<bool(const PrefixEntry&)> pred) const;

  int64_t bytes() const { return bytes_; }
  int32_t size() const { return static_cast<int32_t>(entries_.size()); }
  const std::unordered_map<uint64_t, PrefixEntry>& entries() const { return entries_; }

 private:
  std::unordered_map<uint64_t, PrefixEntry> entries_;
  uint64_t clock_ = 0;
  int64_t bytes_ = 0;
};

// The chain of one sequence's tokens since BOS, kept so that the state at
// each of its segment boundaries can be published. Invalid when the history
// is not known token by token (an imported snapshot) or the state no longer
// follows from it (lossy eviction): such a sequence publishes nothing.
class TokenChain {
 public:
  TokenChain() = default;
  // `root`: the chain's scope (RootKey).
  explicit TokenChain(int32_t block_tokens, uint64_t root = kRootKey)
      : block_tokens_(block_tokens), key_(root) {}
  // Continuing a matched prefix: `blocks` blocks whose chain is `key`.
  static TokenChain AfterPrefix(int32_t block_tokens, uint64_t key, int64_t blocks);

  void Invalidate() { valid_ = false; }
  bool valid() const { return valid_ && block_tokens_ > 0; }
  // Appends tokens that never run past the open block's end.
  void Append(absl::Span<const int32_t> tokens);
  // True when the open block is full; Close() then starts the next one.
  bool block_full() const { return static_cast<int32_t>(open_.size()) == block_tokens_; }
  void Close();

  uint64_t key() const { return key_; }  // of the closed blocks
  int64_t blocks() const { return blocks_; }
  const std::vector<int32_t>& open() const { return open_; }

 private:
  int32_t block_tokens_ = 0;
  bool valid_ = true;
  uint64_t key_ = kRootKey;
  int64_t blocks_ = 0;
  std::vector<int32_t> open_;
};

}  // namespace mcserve::state

#endif  // MCSERVE_SERVER_STATE_PREFIX_INDEX_H_
