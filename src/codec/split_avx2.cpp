// AVX2 split of elements into symbols and packed raw values (docs/FORMAT.md
// sections 1 and 3.1), the encoder's counterpart of the fused decoders:
// bf16 with any kept_bits (R = K + 1 <= 8), lossless fp16 (R = 11) and
// lossless fp32 (R = 24). Same bytes as the element-by-element split.
//
// Raw values are packed by doubling the field width, as the AVX-512 split
// does: u16 pairs -> u32 (one multiply-add by (1, 2^R)), u32 pairs -> u64,
// and (bf16, fp16) u64 pairs -> one field per 128-bit half. Each half then
// holds the bytes of 8 consecutive values at its start, with zero bits
// above them, and is stored whole: the next half's store, R bytes further
// on (8 values = R bytes), overwrites the zeros. So a group's last store
// writes up to kSplitSlack bytes past its values: the caller's raw buffer
// has that much room after the section.
#include "codec/split.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "codec/simd_avx2.h"

namespace nz::codec {

namespace {

// 16 raw values of R <= 8 bits (u16 lanes) packed into 2R bytes at `out`
// (writes zeros up to `out + R + 16`).
NZ_TARGET_AVX2 inline void pack16_narrow(__m256i v16, __m256i pair_weights, __m128i two_r, __m128i four_r,
                                         uint32_t r, uint8_t* out) {
  const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFFll);
  const __m256i v32 = _mm256_madd_epi16(v16, pair_weights);
  const __m256i v64 =
      _mm256_or_si256(_mm256_and_si256(v32, low32), _mm256_sll_epi64(_mm256_srli_epi64(v32, 32), two_r));
  // The high qword of each half is zeroed: the next store only covers it if it holds zeros.
  const __m256i v128 = _mm256_blend_epi32(_mm256_or_si256(v64, _mm256_sll_epi64(_mm256_bsrli_epi128(v64, 8), four_r)),
                                          _mm256_setzero_si256(), 0xCC);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(v128));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + r), _mm256_extracti128_si256(v128, 1));
}

NZ_TARGET_AVX2 void split_bf16(const uint8_t* elements, uint64_t n, uint32_t kept_bits, uint8_t* symbols,
                               uint8_t* raw) {
  const uint32_t r = 1 + kept_bits;
  const __m128i drop = _mm_cvtsi32_si128(static_cast<int>(7 - kept_bits));
  const __m128i two_r = _mm_cvtsi32_si128(static_cast<int>(2 * r));
  const __m128i four_r = _mm_cvtsi32_si128(static_cast<int>(4 * r));
  const __m256i pair_weights = _mm256_set1_epi32(static_cast<int>(1u | ((1u << r) << 16)));
  const __m256i low8 = _mm256_set1_epi16(0xFF);
  const __m256i low7 = _mm256_set1_epi16(0x7F);
  const __m256i bit7 = _mm256_set1_epi16(0x80);
  const uint64_t full = n / 32 * 32;
  for (uint64_t i = 0; i < full; i += 32) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(elements + 2 * i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(elements + 2 * i + 32));
    // packus works within 128-bit halves: the 8-byte groups come out as 0, 2, 1, 3.
    const __m256i sym = _mm256_packus_epi16(_mm256_and_si256(_mm256_srli_epi16(a, 7), low8),
                                            _mm256_and_si256(_mm256_srli_epi16(b, 7), low8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(symbols + i), _mm256_permute4x64_epi64(sym, 0xD8));
    // (s << K) | (m >> (7 - K)): the sign next to the mantissa, then the dropped bits out.
    const __m256i ra = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 8), bit7), _mm256_and_si256(a, low7));
    const __m256i rb = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 8), bit7), _mm256_and_si256(b, low7));
    uint8_t* out = raw + (i / 32) * 4 * r;
    if (kept_bits == 7) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute4x64_epi64(_mm256_packus_epi16(ra, rb), 0xD8));
    } else {
      pack16_narrow(_mm256_srl_epi16(ra, drop), pair_weights, two_r, four_r, r, out);
      pack16_narrow(_mm256_srl_epi16(rb, drop), pair_weights, two_r, four_r, r, out + 2 * r);
    }
  }
  // The tail starts on a byte boundary (32 values are 4R bytes).
  split_elements(dtype_layout(NZ_BF16), kept_bits, elements, full, n, symbols, raw + (full / 32) * 4 * r);
}

// 32 symbols from four vectors of 8 u32 lanes holding them (values < 256).
NZ_TARGET_AVX2 inline void store_symbols32(uint8_t* out, __m256i s0, __m256i s1, __m256i s2, __m256i s3) {
  const __m256i s01 = _mm256_packus_epi32(s0, s1), s23 = _mm256_packus_epi32(s2, s3);
  // The packs work within 128-bit halves: 4-byte groups of lanes 0, 8, 16, 24, 4, 12, 20, 28.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permutevar8x32_epi32(_mm256_packus_epi16(s01, s23), order));
}

NZ_TARGET_AVX2 void split_fp32(const uint8_t* elements, uint64_t n, uint8_t* symbols, uint8_t* raw) {
  const __m256i mantissa = _mm256_set1_epi32(0x7FFFFF);
  const __m256i sign_at_23 = _mm256_set1_epi32(0x800000);
  const __m256i low8 = _mm256_set1_epi32(0xFF);
  // Bytes 0-2 of each of a half's 4 lanes to its first 12 bytes.
  const __m256i drop_top_bytes =
      _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, 0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  const uint64_t full = n / 32 * 32;
  for (uint64_t i = 0; i < full; i += 32) {
    __m256i sym[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(elements + 4 * (i + 8 * q)));
      sym[q] = _mm256_and_si256(_mm256_srli_epi32(x, 23), low8);
      // (s << 23) | m
      const __m256i r = _mm256_or_si256(_mm256_and_si256(x, mantissa), _mm256_and_si256(_mm256_srli_epi32(x, 8), sign_at_23));
      const __m256i packed = _mm256_shuffle_epi8(r, drop_top_bytes);
      uint8_t* out = raw + 3 * (i + 8 * q);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(packed));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 12), _mm256_extracti128_si256(packed, 1));
    }
    store_symbols32(symbols + i, sym[0], sym[1], sym[2], sym[3]);
  }
  split_elements(dtype_layout(NZ_FP32), 23, elements, full, n, symbols, raw + 3 * full);
}

NZ_TARGET_AVX2 void split_fp16(const uint8_t* elements, uint64_t n, uint8_t* symbols, uint8_t* raw) {
  const __m256i low10 = _mm256_set1_epi16(0x3FF);
  const __m256i bit10 = _mm256_set1_epi16(0x400);
  const __m256i exponent = _mm256_set1_epi16(0x1F);
  const __m256i pair_weights = _mm256_set1_epi32(static_cast<int>(1u | (1u << 11 << 16)));
  const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFFll);
  const uint64_t full = n / 32 * 32;
  for (uint64_t i = 0; i < full; i += 32) {
    __m256i sym[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(elements + 2 * (i + 16 * h)));
      sym[h] = _mm256_and_si256(_mm256_srli_epi16(x, 10), exponent);
      // (s << 10) | m
      const __m256i v16 = _mm256_or_si256(_mm256_and_si256(x, low10), _mm256_and_si256(_mm256_srli_epi16(x, 5), bit10));
      const __m256i v32 = _mm256_madd_epi16(v16, pair_weights);  // 22 bits
      const __m256i v64 =
          _mm256_or_si256(_mm256_and_si256(v32, low32), _mm256_slli_epi64(_mm256_srli_epi64(v32, 32), 22));  // 44 bits
      // Low qword of each half: lo | hi << 44; high qword: hi >> 20 (88 bits = 11 bytes).
      const __m256i low_q = _mm256_or_si256(v64, _mm256_slli_epi64(_mm256_bsrli_epi128(v64, 8), 44));
      const __m256i v128 = _mm256_blend_epi32(low_q, _mm256_srli_epi64(v64, 20), 0xCC);
      uint8_t* out = raw + 11 * ((i + 16 * h) / 8);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(v128));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 11), _mm256_extracti128_si256(v128, 1));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(symbols + i),
                        _mm256_permute4x64_epi64(_mm256_packus_epi16(sym[0], sym[1]), 0xD8));
  }
  split_elements(dtype_layout(NZ_FP16), 10, elements, full, n, symbols, raw + 11 * (full / 8));
}

}  // namespace

NZ_TARGET_AVX2 void split_avx2(nz_dtype dtype, uint32_t kept_bits, const uint8_t* elements, uint64_t n,
                               uint8_t* symbols, uint8_t* raw) {
  if (dtype == NZ_BF16) {
    split_bf16(elements, n, kept_bits, symbols, raw);
  } else if (dtype == NZ_FP32) {
    split_fp32(elements, n, symbols, raw);
  } else {
    split_fp16(elements, n, symbols, raw);
  }
}

}  // namespace nz::codec

#else

namespace nz::codec {
void split_avx2(nz_dtype, uint32_t, const uint8_t*, uint64_t, uint8_t*, uint8_t*) {}
}  // namespace nz::codec

#endif
