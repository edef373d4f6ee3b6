// float_bits.cpp: fp16 conversion (bit-exact RNE) and exponent statistics.
#include "float_bits.h"

namespace nztools {

uint16_t f32_to_fp16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));  // NaN stays NaN
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds past 65504: inf
  const int exp = static_cast<int>(abs >> 23) - 127;
  if (exp >= -14) {  // normal fp16: rebias and round 13 bits away
    uint32_t m = abs - (112u << 23);  // exponent 127 -> 15
    m += 0xFFFu + ((m >> 13) & 1u);
    return static_cast<uint16_t>(sign | (m >> 13));
  }
  if (exp < -25) return sign;  // below half the smallest subnormal: +-0 (exp -25 may round up)
  // Subnormal: value = mant * 2^(exp-23) with the implicit bit; fp16 unit is 2^-24.
  const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
  const int shift = -exp - 1;  // bits to drop: mant * 2^(exp-23) / 2^-24 = mant >> (-(exp+1))
  const uint32_t kept = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  uint32_t r = kept;
  if (rest > half || (rest == half && (kept & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return f32_from_bits(sign | 0x7F800000u | (mant << 13));
  if (exp != 0) return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return f32_from_bits(sign);
  float v = std::ldexp(static_cast<float>(mant), -24);  // exact
  return sign ? -v : v;
}

ExponentHistogram exponent_histogram(const void* data, uint64_t count, FloatType t) {
  const FloatLayout l = layout_of(t);
  ExponentHistogram h(size_t{1} << l.exponent_bits, 0);
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint32_t emask = (1u << l.exponent_bits) - 1u;
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t v;
    if (l.bytes == 4) {
      std::memcpy(&v, p + 4 * i, 4);
    } else {
      uint16_t s;
      std::memcpy(&s, p + 2 * i, 2);
      v = s;
    }
    ++h[(v >> l.mantissa_bits) & emask];
  }
  return h;
}

void add_histogram(ExponentHistogram& into, const ExponentHistogram& h) {
  if (into.size() < h.size()) into.resize(h.size(), 0);
  for (size_t i = 0; i < h.size(); ++i) into[i] += h[i];
}

double entropy_bits(const ExponentHistogram& h) {
  uint64_t total = 0;
  for (uint64_t c : h) total += c;
  if (total == 0) return 0.0;
  double bits = 0.0;
  for (uint64_t c : h) {
    if (c == 0) continue;
    const double p = static_cast<double>(c) / static_cast<double>(total);
    bits -= p * std::log2(p);
  }
  return bits;
}

}  // namespace nztools
