#include "server/pool/slot_allocator.h"

#include <cassert>

namespace mcserve::pool {

SlotAllocator::SlotAllocator(int32_t capacity) : refs_(capacity, 0) {
  free_.reserve(capacity);
  for (int32_t s = capacity - 1; s >= 0; --s) free_.push_back(s);
}

std::optional<int32_t> SlotAllocator::Allocate() {
  if (free_.empty()) return std::nullopt;
  const int32_t s = free_.back();
  free_.pop_back();
  refs_[s] = 1;
  return s;
}

void SlotAllocator::Ref(int32_t slot) {
  assert(refs_[slot] > 0);
  ++refs_[slot];
}

void SlotAllocator::Unref(int32_t slot) {
  assert(refs_[slot] > 0);
  if (--refs_[slot] == 0) free_.push_back(slot);
}

}  // namespace mcserve::pool
