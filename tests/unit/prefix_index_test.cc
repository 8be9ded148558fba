// The prefix cache's index on its own: the hash chain, exact matching,
// least-recently-used order and removal of whole subtrees.
#include "server/state/prefix_index.h"

#include <gtest/gtest.h>

namespace mcserve::state {
namespace {

PrefixEntry Block(uint64_t parent, std::vector<int32_t> tokens, int64_t bytes = 10) {
  PrefixEntry e;
  e.parent = parent;
  e.first = parent == kRootKey;
  e.tokens = std::move(tokens);
  e.bytes = bytes;
  return e;
}

TEST(PrefixIndexTest, KeysChainTheBlocksBeforeThem) {
  const uint64_t a = BlockHash(kRootKey, {1, 2});
  EXPECT_EQ(a, BlockHash(kRootKey, {1, 2}));
  EXPECT_NE(a, BlockHash(kRootKey, {2, 1}));
  EXPECT_NE(a, BlockHash(kRootKey, {1, 2, 0}));
  EXPECT_NE(BlockHash(a, {3, 4}), BlockHash(kRootKey, {3, 4}));
}

TEST(PrefixIndexTest, ScopesHaveTheirOwnRoots) {
  EXPECT_EQ(RootKey(""), kRootKey);
  EXPECT_NE(RootKey("alice"), kRootKey);
  EXPECT_NE(RootKey("alice"), RootKey("carol"));
  EXPECT_EQ(RootKey("alice"), RootKey("alice"));
  PrefixIndex ix;
  PrefixEntry e = Block(RootKey("alice"), {1, 2});
  e.first = true;
  const PrefixEntry* a = ix.Insert(e);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(ix.Find(RootKey("alice"), {1, 2}), a);
  EXPECT_EQ(ix.Find(RootKey("carol"), {1, 2}), nullptr);
  EXPECT_EQ(ix.Find(kRootKey, {1, 2}), nullptr);
  // Its chain continues and is removed like any other.
  ASSERT_NE(ix.Insert(Block(a->key, {3})), nullptr);
  EXPECT_EQ(ix.Remove(a->key).size(), 2u);
  EXPECT_EQ(ix.size(), 0);
}

TEST(PrefixIndexTest, FindMatchesTokensAndParentExactly) {
  PrefixIndex ix;
  const PrefixEntry* a = ix.Insert(Block(kRootKey, {1, 2}));
  ASSERT_NE(a, nullptr);
  const uint64_t ka = a->key;
  ASSERT_NE(ix.Insert(Block(ka, {3, 4})), nullptr);
  EXPECT_NE(ix.Find(ka, {3, 4}), nullptr);
  EXPECT_EQ(ix.Find(kRootKey, {3, 4}), nullptr);
  EXPECT_EQ(ix.Find(ka, {3, 5}), nullptr);
  // No parent, no child; a key already present is not replaced.
  EXPECT_EQ(ix.Insert(Block(12345, {9, 9})), nullptr);
  EXPECT_EQ(ix.Insert(Block(kRootKey, {1, 2})), nullptr);
  EXPECT_EQ(ix.size(), 2);
  EXPECT_EQ(ix.bytes(), 20);
}

TEST(PrefixIndexTest, LeavesAreOlderThanTheirAncestorsAndRemovalTakesSubtrees) {
  PrefixIndex ix;
  const uint64_t a = ix.Insert(Block(kRootKey, {1}))->key;
  const uint64_t b = ix.Insert(Block(a, {2}))->key;
  const uint64_t c = ix.Insert(Block(b, {3}))->key;
  const uint64_t x = ix.Insert(Block(kRootKey, {7}))->key;  // another chain, newer
  auto any = [](const PrefixEntry&) { return true; };
  EXPECT_EQ(ix.LeastRecent(any), c);  // the old chain's leaf first
  ix.Touch(c);                        // the old chain is used again
  EXPECT_EQ(ix.LeastRecent(any), x);
  const std::vector<PrefixEntry> gone = ix.Remove(b);
  EXPECT_EQ(gone.size(), 2u);  // b and c
  EXPECT_EQ(ix.size(), 2);
  EXPECT_TRUE(ix.Get(a)->children.empty());
  EXPECT_EQ(ix.bytes(), 20);
}

TEST(PrefixIndexTest, TokenChainClosesBlocksAndGoesInvalidWhenOverrun) {
  TokenChain c(3);
  c.Append(std::vector<int32_t>{1, 2});
  EXPECT_FALSE(c.block_full());
  c.Append(std::vector<int32_t>{3});
  ASSERT_TRUE(c.block_full());
  c.Close();
  EXPECT_EQ(c.key(), BlockHash(kRootKey, {1, 2, 3}));
  EXPECT_EQ(c.blocks(), 1);
  EXPECT_TRUE(c.open().empty());
  c.Append(std::vector<int32_t>{4, 5, 6, 7});
  EXPECT_FALSE(c.valid());
  TokenChain after = TokenChain::AfterPrefix(3, 42, 5);
  EXPECT_EQ(after.key(), 42u);
  EXPECT_EQ(after.blocks(), 5);
  EXPECT_TRUE(after.valid());
}

}  // namespace
}  // namespace mcserve::state
