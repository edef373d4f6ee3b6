// dtype.h: the field widths of each dtype (docs/FORMAT.md section 1).
#pragma once

#include <cstdint>

#include "neuzip/neuzip.h"

namespace nz::codec {

struct DtypeLayout {
  uint32_t exponent_bits;  // E
  uint32_t mantissa_bits;  // M
  uint32_t bytes;          // element size
  bool valid;
};

constexpr DtypeLayout dtype_layout(uint32_t dtype) {
  switch (dtype) {
    case NZ_BF16: return {8, 7, 2, true};
    case NZ_FP16: return {5, 10, 2, true};
    case NZ_FP32: return {8, 23, 4, true};
    default: return {0, 0, 0, false};
  }
}

// Bytes needed for `count` values of `width` bits, rounded up to 4 (pad4).
constexpr uint64_t packed_section_bytes(uint64_t count, uint32_t width) {
  uint64_t bytes = (count * width + 7) / 8;
  return (bytes + 3) & ~uint64_t{3};
}

constexpr uint64_t round_up(uint64_t value, uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

}  // namespace nz::codec
