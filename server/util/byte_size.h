// Byte sizes in flags: "4096", "64KiB", "256MiB", "2GiB" (also KB/MB/GB as
// powers of 1000).
#ifndef MCSERVE_SERVER_UTIL_BYTE_SIZE_H_
#define MCSERVE_SERVER_UTIL_BYTE_SIZE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mcserve {

// INVALID_ARGUMENT for anything else, negatives and overflow included.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text);

}  // namespace mcserve

#endif  // MCSERVE_SERVER_UTIL_BYTE_SIZE_H_
