// Reference-counted slot indices into a preallocated pool: a free list, no
// allocation after construction. Thread-compatible (engine thread only).
#ifndef MCSERVE_SERVER_POOL_SLOT_ALLOCATOR_H_
#define MCSERVE_SERVER_POOL_SLOT_ALLOCATOR_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"

namespace mcserve::pool {

class SlotAllocator {
 public:
  explicit SlotAllocator(int32_t capacity = 0);

  // A free slot with reference count 1, or nullopt when all are taken.
  std::optional<int32_t> Allocate();
  // Reference counts are checked in every build: a slot that is not
  // allocated (or out of range) is an INTERNAL error and nothing changes.
  absl::Status Ref(int32_t slot);
  // Drops one reference; the slot is free again at zero.
  absl::Status Unref(int32_t slot);

  int32_t capacity() const { return static_cast<int32_t>(refs_.size()); }
  int32_t used() const { return capacity() - static_cast<int32_t>(free_.size()); }
  int32_t refcount(int32_t slot) const { return refs_[slot]; }

 private:
  std::vector<int32_t> free_;  // stack; lowest slots handed out first
  std::vector<int32_t> refs_;
};

}  // namespace mcserve::pool

#endif  // MCSERVE_SERVER_POOL_SLOT_ALLOCATOR_H_
