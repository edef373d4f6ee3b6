// AVX2 lossy mode for bf16 (docs/FORMAT.md section 6), 8 elements per
// vector (u32 lanes holding bf16 bits), bit-identical to the reference in
// lossy.cpp. The arithmetic is that of lossy_bf16_avx512.cpp:
// * bf16 and binary32 share the exponent range, so round_k of a binary32 v
//   to K bits of a bf16 is an integer round-to-nearest-even of |v| >> (23 - K)
//   (subnormals included, the carry running into the exponent), shifted back
//   by 7 - K; an overflow past the largest finite value becomes that value,
//   which is a plain unsigned min.
// * to_dtype(d * S) is the same rounding with K = 7 and no clamp (an
//   overflow rounds to the infinity bit pattern by itself).
// * the scale division and multiplication are IEEE binary32 operations, the
//   same as the scalar ones.
// AVX2 has no masked loads: a vector that would run past the end of a block
// goes through a zero-padded copy (a zero changes no block maximum, and
// quantises and scales to zero).
#include "codec/lossy.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cstring>

#include "codec/simd_avx2.h"

namespace nz::codec {

namespace {

// Up to 8 bf16 elements from `p` as u32 lanes; lanes past `count` are zero.
NZ_TARGET_AVX2 inline __m256i load8(const uint8_t* p, uint64_t count) {
  if (count >= 8) return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  alignas(16) uint16_t tmp[8] = {};
  std::memcpy(tmp, p, 2 * count);
  return _mm256_cvtepu16_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
}

// Stores the low halves of the first `count` (<= 8) lanes as bf16.
NZ_TARGET_AVX2 inline void store8(uint8_t* p, uint64_t count, __m256i v) {
  const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  if (count >= 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
    return;
  }
  alignas(16) uint16_t tmp[8];
  _mm_store_si128(reinterpret_cast<__m128i*>(tmp), packed);
  std::memcpy(p, tmp, 2 * count);
}

// All ones in the lanes whose exponent is not all ones.
NZ_TARGET_AVX2 inline __m256i finite_lanes(__m256i x) {
  const __m256i exp = _mm256_set1_epi32(0x7F80);
  return _mm256_xor_si256(_mm256_cmpeq_epi32(_mm256_and_si256(x, exp), exp), _mm256_set1_epi32(-1));
}

// Round-to-nearest-even of the non-negative a >> shift.
NZ_TARGET_AVX2 inline __m256i round_shift(__m256i a, __m128i shift, __m256i half_minus_one) {
  const __m256i lsb = _mm256_and_si256(_mm256_srl_epi32(a, shift), _mm256_set1_epi32(1));
  return _mm256_srl_epi32(_mm256_add_epi32(_mm256_add_epi32(a, half_minus_one), lsb), shift);
}

NZ_TARGET_AVX2 inline bool all_zero(__m256i m) { return _mm256_testz_si256(m, m) != 0; }

}  // namespace

NZ_TARGET_AVX2 nz_status quantize_bf16_avx2(const uint8_t* src, uint64_t n, uint32_t k, uint32_t block_log2,
                                            uint8_t* dst, uint8_t* scales) {
  const uint64_t block = block_log2 > 0 ? (uint64_t{1} << block_log2) : n;
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(23 - k));
  const __m128i back = _mm_cvtsi32_si128(static_cast<int>(7 - k));
  const __m256i half_minus_one = _mm256_set1_epi32(static_cast<int>((1u << (22 - k)) - 1));
  const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i sign16 = _mm256_set1_epi32(0x8000);
  const __m256i largest = _mm256_set1_epi32(static_cast<int>((0xFEu << 7) | (((1u << k) - 1) << (7 - k))));
  const __m256i mag16 = _mm256_set1_epi32(0x7FFF);
  const __m256i low7 = _mm256_set1_epi32(0x7F);
  const __m256i quiet_nan = _mm256_set1_epi32(0x7FC0);
  const __m256i zero = _mm256_setzero_si256();
  for (uint64_t start = 0, b = 0; start < n; start += block, ++b) {
    const uint64_t end = start + block < n ? start + block : n;
    uint32_t code = 0;
    if (block_log2 > 0) {
      // bf16 magnitudes order like their bit patterns.
      __m256i absmax = zero;
      for (uint64_t i = start; i < end; i += 8) {
        const __m256i x = load8(src + 2 * i, end - i);
        absmax = _mm256_max_epu32(absmax, _mm256_and_si256(finite_lanes(x), _mm256_and_si256(x, mag16)));
      }
      alignas(32) uint32_t lanes[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), absmax);
      uint32_t m = 0;
      for (uint32_t v : lanes) m = v > m ? v : m;
      code = scale_code(m << 16);
    }
    const __m256 s = _mm256_set1_ps(scale_value(code));
    __m256i any_nonzero = zero;
    for (uint64_t i = start; i < end; i += 8) {
      const __m256i x = load8(src + 2 * i, end - i);
      const __m256i finite = finite_lanes(x);
      // NaN: not finite, mantissa non-zero.
      const __m256i nan = _mm256_andnot_si256(_mm256_or_si256(finite, _mm256_cmpeq_epi32(_mm256_and_si256(x, low7), zero)),
                                              _mm256_set1_epi32(-1));
      if (k == 0 && !all_zero(nan)) return NZ_ERR_UNSUPPORTED;
      __m256 v = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
      if (code != 0) v = _mm256_blendv_ps(v, _mm256_div_ps(v, s), _mm256_castsi256_ps(finite));
      const __m256i vb = _mm256_castps_si256(v);
      __m256i mag = _mm256_sll_epi32(round_shift(_mm256_and_si256(vb, magnitude), shift, half_minus_one), back);
      mag = _mm256_min_epu32(mag, largest);
      __m256i d = _mm256_blendv_epi8(x, _mm256_or_si256(_mm256_and_si256(x, sign16), mag), finite);  // infinities kept
      // NaN: sign | the quiet NaN.
      d = _mm256_blendv_epi8(d, _mm256_or_si256(_mm256_and_si256(x, sign16), quiet_nan), nan);
      any_nonzero = _mm256_or_si256(any_nonzero, _mm256_and_si256(finite, _mm256_and_si256(d, mag16)));
      store8(dst + 2 * i, end - i, d);
    }
    // A block whose quantised elements are all zero or non-finite stores 0 (lossy.cpp).
    if (block_log2 > 0) scales[b] = static_cast<uint8_t>(all_zero(any_nonzero) ? 0 : code);
  }
  return NZ_OK;
}

NZ_TARGET_AVX2 bool dequantize_bf16_avx2(uint8_t* data, uint64_t n, uint32_t block_log2, const uint8_t* scales) {
  if (block_log2 == 0) return true;
  const uint64_t block = uint64_t{1} << block_log2;
  const __m128i shift = _mm_cvtsi32_si128(16);
  const __m256i half_minus_one = _mm256_set1_epi32(0x7FFF);
  const __m256i mag16 = _mm256_set1_epi32(0x7FFF);
  const __m256i zero = _mm256_setzero_si256();
  for (uint64_t start = 0, b = 0; start < n; start += block, ++b) {
    const uint64_t end = start + block < n ? start + block : n;
    const uint32_t code = scales[b];
    if (code & 1) return false;  // bf16 block maxima have 7 fraction bits, so their codes are even
    if (code == 0) continue;
    const __m256 s = _mm256_set1_ps(scale_value(code));
    __m256i any_nonzero = zero;
    for (uint64_t i = start; i < end; i += 8) {
      const __m256i d = load8(data + 2 * i, end - i);
      const __m256i finite = finite_lanes(d);
      any_nonzero = _mm256_or_si256(any_nonzero, _mm256_and_si256(finite, _mm256_and_si256(d, mag16)));
      const __m256 y = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(d, 16)), s);
      const __m256i r = round_shift(_mm256_castps_si256(y), shift, half_minus_one);
      store8(data + 2 * i, end - i, _mm256_blendv_epi8(d, r, finite));  // non-finite elements stay as they are
    }
    if (all_zero(any_nonzero)) return false;
  }
  return true;
}

}  // namespace nz::codec

#else

namespace nz::codec {
nz_status quantize_bf16_avx2(const uint8_t*, uint64_t, uint32_t, uint32_t, uint8_t*, uint8_t*) {
  return NZ_ERR_UNSUPPORTED;
}
bool dequantize_bf16_avx2(uint8_t*, uint64_t, uint32_t, const uint8_t*) { return false; }
}  // namespace nz::codec

#endif
