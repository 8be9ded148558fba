#include "server/pool/slot_allocator.h"

#include "absl/strings/str_cat.h"

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

namespace {

absl::Status NotAllocated(int32_t slot, int32_t capacity, absl::string_view op) {
  return absl::InternalError(absl::StrCat(op, " of slot ", slot, " which is not allocated (",
                                          capacity, " slots): reference count bug"));
}

}  // namespace

absl::Status SlotAllocator::Ref(int32_t slot) {
  if (slot < 0 || slot >= capacity() || refs_[slot] <= 0) {
    return NotAllocated(slot, capacity(), "Ref");
  }
  ++refs_[slot];
  return absl::OkStatus();
}

absl::Status SlotAllocator::Unref(int32_t slot) {
  if (slot < 0 || slot >= capacity() || refs_[slot] <= 0) {
    return NotAllocated(slot, capacity(), "Unref");
  }
  if (--refs_[slot] == 0) free_.push_back(slot);
  return absl::OkStatus();
}

}  // namespace mcserve::pool
