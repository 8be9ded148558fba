#include "server/state/prefix_index.h"

#include <algorithm>
#include <limits>

namespace mcserve::state {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t BlockHash(uint64_t parent, absl::Span<const int32_t> tokens) {
  uint64_t h = Mix(parent ^ (0x9e3779b97f4a7c15ull * (tokens.size() + 1)));
  for (int32_t t : tokens) h = Mix(h ^ static_cast<uint32_t>(t));
  return h;
}

const PrefixEntry* PrefixIndex::Find(uint64_t parent, absl::Span<const int32_t> tokens) const {
  const PrefixEntry* e = Get(BlockHash(parent, tokens));
  if (e == nullptr || e->parent != parent ||
      !std::equal(e->tokens.begin(), e->tokens.end(), tokens.begin(), tokens.end())) {
    return nullptr;
  }
  return e;
}

const PrefixEntry* PrefixIndex::Get(uint64_t key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

const PrefixEntry* PrefixIndex::Insert(PrefixEntry e) {
  e.key = BlockHash(e.parent, e.tokens);
  if (entries_.count(e.key) != 0) return nullptr;
  if (!e.first) {
    auto parent = entries_.find(e.parent);
    if (parent == entries_.end()) return nullptr;
    parent->second.children.push_back(e.key);
  }
  e.children.clear();
  bytes_ += e.bytes;
  const uint64_t key = e.key;
  PrefixEntry* added = &(entries_[key] = std::move(e));
  Touch(key);
  return added;
}

void PrefixIndex::Touch(uint64_t key) {
  // Ancestors get later stamps than their descendants: an old leaf goes
  // before the root it hangs from.
  for (auto it = entries_.find(key); it != entries_.end(); it = entries_.find(it->second.parent)) {
    it->second.last_use = ++clock_;
    if (it->second.first) break;
  }
}

std::vector<PrefixEntry> PrefixIndex::Remove(uint64_t key) {
  std::vector<PrefixEntry> gone;
  auto it = entries_.find(key);
  if (it == entries_.end()) return gone;
  if (!it->second.first) {
    auto parent = entries_.find(it->second.parent);
    if (parent != entries_.end()) {
      std::vector<uint64_t>& c = parent->second.children;
      c.erase(std::remove(c.begin(), c.end(), key), c.end());
    }
  }
  std::vector<uint64_t> todo = {key};
  while (!todo.empty()) {
    auto e = entries_.find(todo.back());
    todo.pop_back();
    if (e == entries_.end()) continue;
    todo.insert(todo.end(), e->second.children.begin(), e->second.children.end());
    bytes_ -= e->second.bytes;
    gone.push_back(std::move(e->second));
    entries_.erase(e);
  }
  return gone;
}

std::optional<uint64_t> PrefixIndex::LeastRecent(
    absl::FunctionRef<bool(const PrefixEntry&)> pred) const {
  std::optional<uint64_t> best;
  uint64_t best_use = std::numeric_limits<uint64_t>::max();
  for (const auto& [key, e] : entries_) {
    if (e.last_use < best_use && pred(e)) {
      best = key;
      best_use = e.last_use;
    }
  }
  return best;
}

uint64_t RootKey(absl::string_view scope) {
  if (scope.empty()) return kRootKey;
  // The scope's bytes as one block under kRootKey (block tokens are ids,
  // never negative: the -1 keeps a scope from equalling a token block).
  std::vector<int32_t> ids = {-1};
  for (char c : scope) ids.push_back(static_cast<unsigned char>(c));
  return BlockHash(kRootKey, ids);
}

TokenChain TokenChain::AfterPrefix(int32_t block_tokens, uint64_t key, int64_t blocks) {
  TokenChain c(block_tokens);
  c.key_ = key;
  c.blocks_ = blocks;
  return c;
}

void TokenChain::Append(absl::Span<const int32_t> tokens) {
  if (!valid()) return;
  open_.insert(open_.end(), tokens.begin(), tokens.end());
  if (static_cast<int32_t>(open_.size()) > block_tokens_) valid_ = false;  // caller's bug
}

void TokenChain::Close() {
  key_ = BlockHash(key_, open_);
  ++blocks_;
  open_.clear();
}

}  // namespace mcserve::state
