// AVX-512 lossy mode for bf16 (docs/FORMAT.md section 6), 16 elements per
// vector, bit-identical to the reference in lossy.cpp:
// * bf16 and binary32 share the exponent range, so round_k of a binary32 v
//   to K bits of a bf16 is an integer round-to-nearest-even of |v| >> (23 - K)
//   (subnormals included, the carry running into the exponent), shifted back
//   by 7 - K; an overflow past the largest finite value becomes that value,
//   which is a plain unsigned min.
// * to_dtype(d * S) is the same rounding with K = 7 and no clamp (an
//   overflow rounds to the infinity bit pattern by itself).
// * the scale division and multiplication are IEEE binary32 operations, the
//   same as the scalar ones (no FMA contraction is possible here).
#include "codec/lossy.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#define NZ_TARGET_LOSSY __attribute__((target("avx512f,avx512bw,avx512vl")))

namespace nz::codec {

namespace {

NZ_TARGET_LOSSY inline __mmask16 tail_mask(uint64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

NZ_TARGET_LOSSY inline __m512i load16(const uint8_t* p, __mmask16 m) {
  return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
}

NZ_TARGET_LOSSY inline void store16(uint8_t* p, __mmask16 m, __m512i v) {
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(v));
}

// Elements (u32 lanes holding bf16 bits) whose exponent is not all ones.
NZ_TARGET_LOSSY inline __mmask16 finite_mask(__mmask16 m, __m512i x) {
  const __m512i exp = _mm512_set1_epi32(0x7F80);
  return _mm512_mask_cmpneq_epi32_mask(m, _mm512_and_si512(x, exp), exp);
}

// Round-to-nearest-even of the non-negative a >> shift.
NZ_TARGET_LOSSY inline __m512i round_shift(__m512i a, __m128i shift, __m512i half_minus_one) {
  const __m512i lsb = _mm512_and_si512(_mm512_srl_epi32(a, shift), _mm512_set1_epi32(1));
  return _mm512_srl_epi32(_mm512_add_epi32(_mm512_add_epi32(a, half_minus_one), lsb), shift);
}

}  // namespace

NZ_TARGET_LOSSY nz_status quantize_bf16_avx512(const uint8_t* src, uint64_t n, uint32_t k, uint32_t block_log2,
                                               uint8_t* dst, uint8_t* scales) {
  const uint64_t block = block_log2 > 0 ? (uint64_t{1} << block_log2) : n;
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(23 - k));
  const __m128i back = _mm_cvtsi32_si128(static_cast<int>(7 - k));
  const __m512i half_minus_one = _mm512_set1_epi32(static_cast<int>((1u << (22 - k)) - 1));
  const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i sign16 = _mm512_set1_epi32(0x8000);
  const __m512i largest = _mm512_set1_epi32(static_cast<int>((0xFEu << 7) | (((1u << k) - 1) << (7 - k))));
  const __m512i mag16 = _mm512_set1_epi32(0x7FFF);
  const __m512i quiet_nan = _mm512_set1_epi32(0x7FC0);
  for (uint64_t start = 0, b = 0; start < n; start += block, ++b) {
    const uint64_t end = start + block < n ? start + block : n;
    uint32_t code = 0;
    if (block_log2 > 0) {
      // bf16 magnitudes order like their bit patterns.
      __m512i absmax = _mm512_setzero_si512();
      for (uint64_t i = start; i < end; i += 16) {
        const __mmask16 m = tail_mask(end - i);
        const __m512i x = load16(src + 2 * i, m);
        absmax = _mm512_mask_max_epu32(absmax, finite_mask(m, x), absmax, _mm512_and_si512(x, mag16));
      }
      code = scale_code(_mm512_reduce_max_epu32(absmax) << 16);
    }
    const __m512 s = _mm512_set1_ps(scale_value(code));
    __mmask16 any_nonzero = 0;
    for (uint64_t i = start; i < end; i += 16) {
      const __mmask16 m = tail_mask(end - i);
      const __m512i x = load16(src + 2 * i, m);
      const __mmask16 finite = finite_mask(m, x);
      const __mmask16 nan = _mm512_mask_test_epi32_mask(m & ~finite, x, _mm512_set1_epi32(0x7F));
      if (nan != 0 && k == 0) return NZ_ERR_UNSUPPORTED;
      __m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
      if (code != 0) v = _mm512_mask_div_ps(v, finite, v, s);
      const __m512i vb = _mm512_castps_si512(v);
      __m512i mag = _mm512_sll_epi32(round_shift(_mm512_and_si512(vb, magnitude), shift, half_minus_one), back);
      mag = _mm512_min_epu32(mag, largest);
      __m512i d = _mm512_or_si512(_mm512_and_si512(x, sign16), mag);
      d = _mm512_mask_mov_epi32(x, finite, d);  // infinities kept
      // NaN: sign | the quiet NaN, (x & 0x8000) | 0x7FC0.
      d = _mm512_mask_mov_epi32(d, nan, _mm512_ternarylogic_epi32(x, sign16, quiet_nan, 0xEA));
      any_nonzero |= _mm512_mask_test_epi32_mask(finite, d, mag16);
      store16(dst + 2 * i, m, d);
    }
    if (block_log2 > 0) scales[b] = static_cast<uint8_t>(any_nonzero != 0 ? code : 0);
  }
  return NZ_OK;
}

NZ_TARGET_LOSSY bool dequantize_bf16_avx512(uint8_t* data, uint64_t n, uint32_t block_log2, const uint8_t* scales) {
  if (block_log2 == 0) return true;
  const uint64_t block = uint64_t{1} << block_log2;
  const __m128i shift = _mm_cvtsi32_si128(16);
  const __m512i half_minus_one = _mm512_set1_epi32(0x7FFF);
  const __m512i mag16 = _mm512_set1_epi32(0x7FFF);
  for (uint64_t start = 0, b = 0; start < n; start += block, ++b) {
    const uint64_t end = start + block < n ? start + block : n;
    const uint32_t code = scales[b];
    if (code & 1) return false;  // bf16 block maxima have 7 fraction bits, so their codes are even
    if (code == 0) continue;
    const __m512 s = _mm512_set1_ps(scale_value(code));
    __mmask16 any_nonzero = 0;
    for (uint64_t i = start; i < end; i += 16) {
      const __mmask16 m = tail_mask(end - i);
      const __m512i d = load16(data + 2 * i, m);
      const __mmask16 finite = finite_mask(m, d);
      any_nonzero |= _mm512_mask_test_epi32_mask(finite, d, mag16);
      const __m512 y = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(d, 16)), s);
      const __m512i r = round_shift(_mm512_castps_si512(y), shift, half_minus_one);
      store16(data + 2 * i, finite, r);  // non-finite elements stay as they are
    }
    if (any_nonzero == 0) return false;
  }
  return true;
}

}  // namespace nz::codec

#else

namespace nz::codec {
nz_status quantize_bf16_avx512(const uint8_t*, uint64_t, uint32_t, uint32_t, uint8_t*, uint8_t*) {
  return NZ_ERR_UNSUPPORTED;
}
bool dequantize_bf16_avx512(uint8_t*, uint64_t, uint32_t, const uint8_t*) { return false; }
}  // namespace nz::codec

#endif
