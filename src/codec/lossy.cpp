#include "codec/lossy.h"

#include <bit>
#include <cstring>

#include "codec/element_io.h"

namespace nz::codec {

namespace {

// Rounds base + sig / 2^shift to nearest, ties to the even result. `base`
// carries the exponent bits that sit above the kept mantissa, so "even" is
// the parity of bit M - K of the element's bit pattern (for K = 0 that is
// the exponent's lowest bit), as the integer rounding on the GPU does.
// The round-up test is written without branches: which way a weight
// rounds is data, and a mispredicted branch per element made this loop
// (the scalar level's lossy path) cost about 20 ns per element.
uint64_t round_even_with_base(uint64_t base, uint64_t sig, uint32_t shift) {
  if (shift == 0) return base + sig;
  if (shift > 40) return base;
  const uint64_t q = base + (sig >> shift);
  const uint64_t rem = sig & ((uint64_t{1} << shift) - 1);
  const uint64_t half = uint64_t{1} << (shift - 1);
  return q + static_cast<uint64_t>((rem > half) | ((rem == half) & (q & 1)));
}

uint32_t exponent_all_ones(const DtypeLayout& l) { return (1u << l.exponent_bits) - 1; }

float bits_to_float(uint32_t b) { return std::bit_cast<float>(b); }
uint32_t float_to_bits(float f) { return std::bit_cast<uint32_t>(f); }

// The element functions, always inlined: the chunk loops below instantiate
// them with a compile-time layout, so every dtype test folds away.
#define NZ_INLINE [[gnu::always_inline]] inline

NZ_INLINE bool is_nan(uint32_t bits, const DtypeLayout& l) {
  uint32_t exp = (bits >> l.mantissa_bits) & exponent_all_ones(l);
  return exp == exponent_all_ones(l) && (bits & ((1u << l.mantissa_bits) - 1)) != 0;
}

NZ_INLINE bool is_finite(uint32_t bits, const DtypeLayout& l) {
  return ((bits >> l.mantissa_bits) & exponent_all_ones(l)) != exponent_all_ones(l);
}

NZ_INLINE uint32_t round_k_inline(uint32_t v, const DtypeLayout& l, uint32_t k, bool clamp_overflow) {
  const uint32_t E = l.exponent_bits, M = l.mantissa_bits;
  const uint32_t sign = (v >> 31) << (E + M);
  const uint32_t exp32 = (v >> 23) & 0xFF;
  const uint32_t man = v & 0x7FFFFF;
  const uint32_t max_exp = exponent_all_ones(l);
  if (exp32 == 0xFF) {
    if (man == 0) return sign | (max_exp << M);                 // infinity kept
    return sign | (max_exp << M) | (1u << (M - 1));            // quiet NaN
  }
  if (exp32 == 0 && man == 0) return sign;
  const int e = exp32 == 0 ? -126 : static_cast<int>(exp32) - 127;
  const uint64_t sig = exp32 == 0 ? man : (man | (1u << 23));
  const int bias = (1 << (E - 1)) - 1;
  const int te = e + bias;  // target exponent field if normal
  const uint32_t shift = 23 - k + (te < 1 ? static_cast<uint32_t>(1 - te) : 0);
  const uint64_t te_eff = te < 1 ? 1 : static_cast<uint64_t>(te);
  // In units of the K-bit step: the exponent field above, the significand
  // (implicit bit included for normal values, so a carry out of the
  // mantissa lands in the exponent by plain addition).
  const uint64_t units = round_even_with_base((te_eff - 1) << k, sig, shift);
  const uint64_t mag = units << (M - k);
  if (mag >= (uint64_t{max_exp} << M)) {
    if (!clamp_overflow) return sign | (max_exp << M);
    return sign | ((max_exp - 1) << M) | (((1u << k) - 1) << (M - k));
  }
  return sign | static_cast<uint32_t>(mag);
}

NZ_INLINE uint32_t to_f32_bits(uint32_t bits, const DtypeLayout& l) {
  if (l.bytes == 4) return bits;
  if (l.exponent_bits == 8) return bits << 16;  // bf16
  const uint32_t sign = (bits >> 15) << 31;
  const uint32_t exp = (bits >> 10) & 0x1F;
  uint32_t man = bits & 0x3FF;
  if (exp == 0x1F) return sign | (0xFFu << 23) | (man << 13);
  if (exp != 0) return sign | ((exp - 15 + 127) << 23) | (man << 13);
  if (man == 0) return sign;
  int e = -14;  // subnormal: normalise
  while ((man & 0x400) == 0) {
    man <<= 1;
    --e;
  }
  return sign | (static_cast<uint32_t>(e + 127) << 23) | ((man & 0x3FF) << 13);
}

NZ_INLINE uint32_t from_f32_bits(uint32_t f32_bits, const DtypeLayout& l) {
  if (l.bytes == 4) return f32_bits;
  return round_k_inline(f32_bits, l, l.mantissa_bits, /*clamp_overflow=*/false);
}

}  // namespace

bool element_is_nan(uint32_t bits, const DtypeLayout& l) { return is_nan(bits, l); }
bool element_is_finite(uint32_t bits, const DtypeLayout& l) { return is_finite(bits, l); }
uint32_t round_k(uint32_t v, const DtypeLayout& l, uint32_t k, bool clamp_overflow) {
  return round_k_inline(v, l, k, clamp_overflow);
}
uint32_t element_to_f32_bits(uint32_t bits, const DtypeLayout& l) { return to_f32_bits(bits, l); }
uint32_t f32_bits_to_element(uint32_t f32_bits, const DtypeLayout& l) { return from_f32_bits(f32_bits, l); }

uint32_t scale_code(uint32_t absmax_bits) {
  uint32_t exp = (absmax_bits >> 23) & 0xFF;
  uint32_t man = absmax_bits & 0x7FFFFF;
  if (exp == 0) {
    if (man == 0) return 0;
    while ((man & 0x800000) == 0) man <<= 1;  // binary32 subnormal: normalise
    man &= 0x7FFFFF;
  }
  return man >> 15;
}

namespace {

bool is_bf16(const DtypeLayout& l) { return l.bytes == 2 && l.exponent_bits == 8; }

}  // namespace

nz_status quantize_chunk(const uint8_t* src, uint64_t n, const DtypeLayout& l, uint32_t k,
                         uint32_t block_log2, uint8_t* dst, uint8_t* scales, CpuLevel level) {
  if (is_bf16(l) && level == CpuLevel::kAvx512) return quantize_bf16_avx512(src, n, k, block_log2, dst, scales);
  if (level_allows(level, CpuLevel::kAvx2)) return quantize_avx2(src, n, l, k, block_log2, dst, scales);
  return quantize_chunk_reference(src, n, l, k, block_log2, dst, scales);
}

bool dequantize_chunk(uint8_t* data, uint64_t n, const DtypeLayout& l, uint32_t block_log2,
                      const uint8_t* scales, CpuLevel level) {
  if (is_bf16(l) && level == CpuLevel::kAvx512) return dequantize_bf16_avx512(data, n, block_log2, scales);
  if (level_allows(level, CpuLevel::kAvx2)) return dequantize_avx2(data, n, l, block_log2, scales);
  return dequantize_chunk_reference(data, n, l, block_log2, scales);
}

namespace {

template <nz_dtype kDtype>
nz_status quantize_fixed(const uint8_t* src, uint64_t n, uint32_t k, uint32_t block_log2, uint8_t* dst,
                         uint8_t* scales) {
  constexpr DtypeLayout l = dtype_layout(kDtype);
  const uint64_t block = block_log2 > 0 ? (uint64_t{1} << block_log2) : n;
  for (uint64_t start = 0, b = 0; start < n; start += block, ++b) {
    const uint64_t end = start + block < n ? start + block : n;
    float s = 1.0f;
    uint32_t code = 0;
    if (block_log2 > 0) {
      uint32_t absmax = 0;  // binary32 bits of |x|: integer order = float order
      for (uint64_t i = start; i < end; ++i) {
        uint32_t x = load_element(src, i, l.bytes);
        if (!is_finite(x, l)) continue;
        uint32_t a = to_f32_bits(x, l) & 0x7FFFFFFFu;
        if (a > absmax) absmax = a;
      }
      code = scale_code(absmax);
      s = scale_value(code);
    }
    bool any_nonzero = false;
    for (uint64_t i = start; i < end; ++i) {
      uint32_t x = load_element(src, i, l.bytes);
      if (is_nan(x, l) && k == 0) return NZ_ERR_UNSUPPORTED;
      uint32_t v = to_f32_bits(x, l);
      if (is_finite(x, l) && code != 0) v = float_to_bits(bits_to_float(v) / s);
      uint32_t d = round_k_inline(v, l, k, /*clamp_overflow=*/true);
      store_element(dst, i, l.bytes, d);
      any_nonzero |= is_finite(d, l) && (d << (33 - l.bytes * 8)) != 0;
    }
    // A block whose quantised elements are all zero or non-finite decodes
    // the same with any scale: store 0 so the decoder can insist on it.
    if (block_log2 > 0) scales[b] = static_cast<uint8_t>(any_nonzero ? code : 0);
  }
  return NZ_OK;
}

template <nz_dtype kDtype>
bool dequantize_fixed(uint8_t* data, uint64_t n, uint32_t block_log2, const uint8_t* scales) {
  constexpr DtypeLayout l = dtype_layout(kDtype);
  if (block_log2 == 0) return true;
  const uint64_t block = uint64_t{1} << block_log2;
  constexpr bool is_bf16 = kDtype == NZ_BF16;
  for (uint64_t start = 0, b = 0; start < n; start += block, ++b) {
    const uint64_t end = start + block < n ? start + block : n;
    const uint32_t code = scales[b];
    // bf16 block maxima have 7 fraction bits, so their codes are even.
    if (is_bf16 && (code & 1)) return false;
    if (code == 0) continue;
    const float s = scale_value(code);
    bool any_nonzero = false;
    for (uint64_t i = start; i < end; ++i) {
      uint32_t d = load_element(data, i, l.bytes);
      if (!is_finite(d, l)) continue;
      any_nonzero |= (d << (33 - l.bytes * 8)) != 0;
      float y = bits_to_float(to_f32_bits(d, l)) * s;
      store_element(data, i, l.bytes, from_f32_bits(float_to_bits(y), l));
    }
    if (!any_nonzero) return false;
  }
  return true;
}

}  // namespace

nz_status quantize_chunk_reference(const uint8_t* src, uint64_t n, const DtypeLayout& l, uint32_t k,
                                   uint32_t block_log2, uint8_t* dst, uint8_t* scales) {
  if (l.bytes == 4) return quantize_fixed<NZ_FP32>(src, n, k, block_log2, dst, scales);
  if (l.exponent_bits == 8) return quantize_fixed<NZ_BF16>(src, n, k, block_log2, dst, scales);
  return quantize_fixed<NZ_FP16>(src, n, k, block_log2, dst, scales);
}

bool dequantize_chunk_reference(uint8_t* data, uint64_t n, const DtypeLayout& l, uint32_t block_log2,
                                const uint8_t* scales) {
  if (l.bytes == 4) return dequantize_fixed<NZ_FP32>(data, n, block_log2, scales);
  if (l.exponent_bits == 8) return dequantize_fixed<NZ_BF16>(data, n, block_log2, scales);
  return dequantize_fixed<NZ_FP16>(data, n, block_log2, scales);
}

}  // namespace nz::codec
