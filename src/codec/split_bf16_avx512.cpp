// AVX-512 split of bf16 elements into symbols and packed raw values
// (docs/FORMAT.md sections 1 and 3.1), 32 elements per iteration.
//
// 32 raw values of R <= 8 bits are exactly 4R bytes, so every iteration
// writes whole bytes. The values are packed by doubling the field width:
// u16 pairs -> u32 (one multiply-add by (1, 2^R)), u32 pairs -> u64, u64
// pairs -> the low 8R bits of each 128-bit lane; one byte permute then
// gathers the R low bytes of the four lanes.
#include <cstring>

#include "codec/bitpack.h"
#include "codec/split.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#define NZ_TARGET_SPLIT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

namespace nz::codec {

NZ_TARGET_SPLIT void split_bf16_avx512(const uint8_t* elements, uint64_t n, uint32_t kept_bits, uint8_t* symbols,
                                       uint8_t* raw) {
  const uint32_t r = 1 + kept_bits;
  const __m128i drop = _mm_cvtsi32_si128(static_cast<int>(7 - kept_bits));
  const __m128i two_r = _mm_cvtsi32_si128(static_cast<int>(2 * r));
  const __m128i four_r = _mm_cvtsi32_si128(static_cast<int>(4 * r));
  const __m512i pair_weights = _mm512_set1_epi32(static_cast<int>(1u | ((1u << r) << 16)));
  const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFFll);
  const __m512i low7 = _mm512_set1_epi16(0x7F);
  const __m512i bit7 = _mm512_set1_epi16(0x80);
  alignas(64) uint8_t pick[64] = {};
  for (uint32_t lane = 0; lane < 4; ++lane) {
    for (uint32_t b = 0; b < r; ++b) pick[lane * r + b] = static_cast<uint8_t>(16 * lane + b);
  }
  const __m512i gather_bytes = _mm512_load_si512(pick);
  const __mmask64 out_bytes = (uint64_t{1} << (4 * r)) - 1;
  const uint64_t full = n / 32 * 32;
  for (uint64_t i = 0; i < full; i += 32) {
    const __m512i x = _mm512_loadu_si512(elements + 2 * i);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(symbols + i), _mm512_cvtepi16_epi8(_mm512_srli_epi16(x, 7)));
    // (s << K) | (m >> (7 - K)): the sign next to the mantissa, then the dropped bits out.
    const __m512i sm = _mm512_ternarylogic_epi32(_mm512_srli_epi16(x, 8), bit7, _mm512_and_si512(x, low7), 0xEA);
    const __m512i v16 = _mm512_srl_epi16(sm, drop);
    const __m512i v32 = _mm512_madd_epi16(v16, pair_weights);
    const __m512i v64 = _mm512_ternarylogic_epi64(v32, low32, _mm512_sll_epi64(_mm512_srli_epi64(v32, 32), two_r), 0xEA);
    const __m512i v128 = _mm512_or_si512(v64, _mm512_sll_epi64(_mm512_bsrli_epi128(v64, 8), four_r));
    _mm512_mask_storeu_epi8(raw + (i / 32) * 4 * r, out_bytes, _mm512_permutexvar_epi8(gather_bytes, v128));
  }
  // The tail starts on a byte boundary (32 values are 4R bytes).
  split_elements(dtype_layout(NZ_BF16), kept_bits, elements, full, n, symbols, raw + (full / 32) * 4 * r);
}

}  // namespace nz::codec

#else

namespace nz::codec {
void split_bf16_avx512(const uint8_t*, uint64_t, uint32_t, uint8_t*, uint8_t*) {}
}  // namespace nz::codec

#endif
