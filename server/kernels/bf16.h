// bfloat16 <-> float32 conversion with round-to-nearest-even, bit-identical
// to PyTorch's, usable from host and device code.
#ifndef MCSERVE_SERVER_KERNELS_BF16_H_
#define MCSERVE_SERVER_KERNELS_BF16_H_

#include <cstdint>
#include <cstring>

#include "server/kernels/hd.h"

namespace mcserve::kernels {

MCSERVE_HD float Bf16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

MCSERVE_HD uint16_t FloatToBf16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace mcserve::kernels

#endif  // MCSERVE_SERVER_KERNELS_BF16_H_
