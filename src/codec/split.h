// split.h: cutting an element into (symbol, raw value) and joining them back
// (docs/FORMAT.md section 1). Elements are handled as their bit pattern in a
// u32 (16-bit dtypes in the low half).
#pragma once

#include <cstdint>

#include "codec/bitpack.h"
#include "codec/dtype.h"
#include "codec/element_io.h"

namespace nz::codec {

struct FieldSplit {
  uint32_t mantissa_bits;  // M
  uint32_t exponent_mask;  // 2^E - 1
  uint32_t kept_bits;      // K
  uint32_t sign_shift;     // E + M

  FieldSplit(const DtypeLayout& layout, uint32_t kept)
      : mantissa_bits(layout.mantissa_bits),
        exponent_mask((1u << layout.exponent_bits) - 1),
        kept_bits(kept),
        sign_shift(layout.exponent_bits + layout.mantissa_bits) {}

  uint32_t symbol(uint32_t bits) const { return (bits >> mantissa_bits) & exponent_mask; }

  // (s << K) | (m >> (M - K))
  uint32_t raw(uint32_t bits) const {
    uint32_t sign = (bits >> sign_shift) & 1u;
    uint32_t mantissa = bits & ((1u << mantissa_bits) - 1);
    return (sign << kept_bits) | (mantissa >> (mantissa_bits - kept_bits));
  }

  uint32_t join(uint32_t symbol, uint32_t raw) const {
    uint32_t sign = raw >> kept_bits;
    uint32_t mantissa = (raw & ((1u << kept_bits) - 1)) << (mantissa_bits - kept_bits);
    return (sign << sign_shift) | (symbol << mantissa_bits) | mantissa;
  }
};

// The element-by-element split of elements [first, n): symbols[i], and the
// raw values packed from `raw` on (which must be zeroed, and where value
// `first` starts). The reference the vector splits are tested against, and
// their tails.
inline void split_elements(const DtypeLayout& layout, uint32_t kept_bits, const uint8_t* elements, uint64_t first,
                           uint64_t n, uint8_t* symbols, uint8_t* raw) {
  const FieldSplit split(layout, kept_bits);
  BitWriter writer(raw);
  for (uint64_t i = first; i < n; ++i) {
    const uint32_t x = load_element(elements, i, layout.bytes);
    symbols[i] = static_cast<uint8_t>(split.symbol(x));
    writer.put(split.raw(x), 1 + kept_bits);
  }
  writer.finish();
}

// bf16 with AVX-512 (F, BW, VL, VBMI): symbols[i] and the raw values packed
// at 1 + kept_bits bits into `raw` (zeroed beforehand, room for the section),
// for any kept_bits <= 7. Same bytes as the element-by-element split.
void split_bf16_avx512(const uint8_t* elements, uint64_t n, uint32_t kept_bits, uint8_t* symbols, uint8_t* raw);

// Lossless fp16 and fp32 with AVX-512 (F, BW, VL, VBMI): symbols[i] and the
// raw values packed at 1 + M bits into `raw` (room for the section). Same
// bytes as the element-by-element split.
void split_wide_avx512(nz_dtype dtype, const uint8_t* elements, uint64_t n, uint8_t* symbols, uint8_t* raw);

// AVX2: bf16 with any kept_bits <= 7, lossless fp16 and fp32. `raw` is
// zeroed and has kSplitSlack bytes of room after the section (the vector
// stores run past a group's last value with zeros). Same bytes as the
// element-by-element split.
inline constexpr uint64_t kSplitSlack = 16;
void split_avx2(nz_dtype dtype, uint32_t kept_bits, const uint8_t* elements, uint64_t n, uint8_t* symbols,
                uint8_t* raw);

}  // namespace nz::codec
