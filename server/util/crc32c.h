// CRC-32C (Castagnoli), the checksum of session snapshots. Debian's Abseil
// predates absl/crc, hence this small table-driven version.
#ifndef MCSERVE_SERVER_UTIL_CRC32C_H_
#define MCSERVE_SERVER_UTIL_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace mcserve {

// Extends `crc` (0 to start) over `n` bytes at `data`.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

}  // namespace mcserve

#endif  // MCSERVE_SERVER_UTIL_CRC32C_H_
