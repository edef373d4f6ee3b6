// AVX-512 split of lossless fp16 and fp32 elements into symbols and packed
// raw values (docs/FORMAT.md sections 1 and 3.1), the encoder's counterpart
// of the fused decoder.
//
// * fp32: R = 24, so 16 raw values are exactly 48 bytes: the sign is moved
//   next to the mantissa, then one byte permute drops every fourth byte.
// * fp16: R = 11, 32 values are exactly 44 bytes. The values are packed by
//   doubling the field width as in the bf16 split: u16 pairs -> u32 (a
//   multiply-add by (1, 2^11)), u32 pairs -> u64 (44 bits), u64 pairs -> 88
//   bits per 128-bit lane (the high value straddles the two halves); one
//   byte permute gathers the 11 low bytes of the four lanes.
#include <cstring>

#include "codec/bitpack.h"
#include "codec/split.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#define NZ_TARGET_SPLIT_WIDE __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

namespace nz::codec {

namespace {

NZ_TARGET_SPLIT_WIDE void split_fp32(const uint8_t* elements, uint64_t n, uint8_t* symbols, uint8_t* raw) {
  const __m512i mantissa = _mm512_set1_epi32(0x7FFFFF);
  const __m512i sign_at_23 = _mm512_set1_epi32(0x800000);
  alignas(64) uint8_t pick[64] = {};
  for (int i = 0; i < 16; ++i) {
    for (int b = 0; b < 3; ++b) pick[3 * i + b] = static_cast<uint8_t>(4 * i + b);
  }
  const __m512i drop_top_bytes = _mm512_load_si512(pick);
  const __mmask64 out_bytes = (uint64_t{1} << 48) - 1;
  const uint64_t full = n / 16 * 16;
  for (uint64_t i = 0; i < full; i += 16) {
    const __m512i x = _mm512_loadu_si512(elements + 4 * i);
    // cvtepi32_epi8 truncates: the sign above the exponent falls away.
    _mm_storeu_si128(reinterpret_cast<__m128i*>(symbols + i), _mm512_cvtepi32_epi8(_mm512_srli_epi32(x, 23)));
    // (s << 23) | m: a | (b & c) with a = x & mantissa, b = x >> 8, c = bit 23.
    const __m512i r = _mm512_ternarylogic_epi32(_mm512_and_si512(x, mantissa), _mm512_srli_epi32(x, 8), sign_at_23, 0xF8);
    _mm512_mask_storeu_epi8(raw + 3 * i, out_bytes, _mm512_permutexvar_epi8(drop_top_bytes, r));
  }
  split_elements(dtype_layout(NZ_FP32), 23, elements, full, n, symbols, raw + 3 * full);
}

NZ_TARGET_SPLIT_WIDE void split_fp16(const uint8_t* elements, uint64_t n, uint8_t* symbols, uint8_t* raw) {
  const __m512i low10 = _mm512_set1_epi16(0x3FF);
  const __m512i bit10 = _mm512_set1_epi16(0x400);
  const __m512i exponent = _mm512_set1_epi16(0x1F);
  const __m512i pair_weights = _mm512_set1_epi32(static_cast<int>(1u | (1u << 11 << 16)));
  const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFFll);
  alignas(64) uint8_t pick[64] = {};
  for (int lane = 0; lane < 4; ++lane) {
    for (int b = 0; b < 11; ++b) pick[lane * 11 + b] = static_cast<uint8_t>(16 * lane + b);
  }
  const __m512i gather_bytes = _mm512_load_si512(pick);
  const __mmask64 out_bytes = (uint64_t{1} << 44) - 1;
  const uint64_t full = n / 32 * 32;
  for (uint64_t i = 0; i < full; i += 32) {
    const __m512i x = _mm512_loadu_si512(elements + 2 * i);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(symbols + i),
                        _mm512_cvtepi16_epi8(_mm512_and_si512(_mm512_srli_epi16(x, 10), exponent)));
    // (s << 10) | m: a | (b & c) with a = x & low10, b = x >> 5, c = bit 10.
    const __m512i v16 = _mm512_ternarylogic_epi32(_mm512_and_si512(x, low10), _mm512_srli_epi16(x, 5), bit10, 0xF8);
    const __m512i v32 = _mm512_madd_epi16(v16, pair_weights);  // 22 bits
    const __m512i v64 =
        _mm512_ternarylogic_epi64(v32, low32, _mm512_slli_epi64(_mm512_srli_epi64(v32, 32), 22), 0xEA);  // 44 bits
    // Low half of each 128-bit lane: lo | hi << 44; high half: hi >> 20.
    const __m512i low_half = _mm512_or_si512(v64, _mm512_slli_epi64(_mm512_bsrli_epi128(v64, 8), 44));
    const __m512i v128 = _mm512_mask_blend_epi64(0xAA, low_half, _mm512_srli_epi64(v64, 20));
    _mm512_mask_storeu_epi8(raw + 11 * (i / 8), out_bytes, _mm512_permutexvar_epi8(gather_bytes, v128));
  }
  split_elements(dtype_layout(NZ_FP16), 10, elements, full, n, symbols, raw + 11 * (full / 8));
}

}  // namespace

void split_wide_avx512(nz_dtype dtype, const uint8_t* elements, uint64_t n, uint8_t* symbols, uint8_t* raw) {
  if (dtype == NZ_FP32) {
    split_fp32(elements, n, symbols, raw);
  } else {
    split_fp16(elements, n, symbols, raw);
  }
}

}  // namespace nz::codec

#else

namespace nz::codec {
void split_wide_avx512(nz_dtype, const uint8_t*, uint64_t, uint8_t*, uint8_t*) {}
}  // namespace nz::codec

#endif
