// hash_avx2.h: nzhash terms (docs/FORMAT.md section 5) of 8 consecutive
// u32 words at a time with AVX2, for the standalone hash and the fused
// decoders. Same sums as the scalar mix64, in any order.
//
// AVX2 has no 64-bit multiply; the two multiplies of mix64 are built from
// 32 x 32 -> 64-bit (vpmuludq) and 32 x 32 -> low 32-bit (vpmulld) ones.
// The first one is cheaper than a general one because of what the index
// looks like. For word w_j, z = (j << 32) | w_j, and
// * mix64's first step gives z ^ (z >> 33) = (j << 32) | (w_j ^ (j >> 1)):
//   only the low half depends on the data;
// * z * c1 mod 2^64 = lo * c1_lo + ((lo * c1_hi + j * c1_lo) mod 2^32) << 32
//   with lo = w_j ^ (j >> 1): j * c1_lo is kept up to date by additions.
// hash_words keeps the 8 words one per dword until the second multiply
// (see there); lanes 2k and 2k + 1 (words j and j + 1, j even) share
// j >> 1, so the index vectors are the same as for 64-bit lanes.
//
// Include only from an AVX2 translation unit (simd_avx2.h).
#pragma once

#include <cstdint>

#include "codec/simd_avx2.h"

namespace nz::codec::avx2 {

inline constexpr uint64_t kMixC1 = 0xFF51AFD7ED558CCDull;
inline constexpr uint64_t kMixC2 = 0xC4CEB9FE1A85EC53ull;

struct HashConsts {
  // Each constant in every dword: vpmulld uses all of them, vpmuludq the
  // low dword of each 64-bit lane.
  __m256i c1_lo, c1_hi, c2_lo, c2_hi;
  __m256i high_dword;  // the high dword of each 64-bit lane
  __m256i half_step;   // per 8 words: (j + 8) >> 1 = (j >> 1) + 4, in both dwords
  __m256i c1_step;     // per 8 words: + 8 * c1_lo, in both dwords

  NZ_TARGET_AVX2 HashConsts() {
    const auto lo = static_cast<int>(kMixC1 & 0xFFFFFFFFu);
    c1_lo = _mm256_set1_epi32(lo);
    c1_hi = _mm256_set1_epi32(static_cast<int>(kMixC1 >> 32));
    c2_lo = _mm256_set1_epi32(static_cast<int>(kMixC2 & 0xFFFFFFFFu));
    c2_hi = _mm256_set1_epi32(static_cast<int>(kMixC2 >> 32));
    high_dword = _mm256_set1_epi64x(static_cast<long long>(0xFFFFFFFF00000000ull));
    half_step = _mm256_set1_epi32(4);
    c1_step = _mm256_set1_epi32(static_cast<int>(8u * static_cast<uint32_t>(lo)));
  }
};

// Where the next 8 words are: per 64-bit lane k, the even word j = first + 2k
// and the odd word j + 1. Dword arithmetic wraps mod 2^32, as the hash wants.
struct HashIndex {
  __m256i half;  // j >> 1 in both dwords
  __m256i jc1;   // j * c1_lo in the low dword, (j + 1) * c1_lo in the high one
  __m256i sum;   // running sum of the terms

  // `first_word` must be even.
  NZ_TARGET_AVX2 explicit HashIndex(uint64_t first_word) {
    alignas(32) uint32_t h[8], c[8];
    const uint64_t c1 = kMixC1 & 0xFFFFFFFFu;
    for (uint64_t k = 0; k < 4; ++k) {
      const uint64_t j = first_word + 2 * k;
      h[2 * k] = h[2 * k + 1] = static_cast<uint32_t>(j >> 1);
      c[2 * k] = static_cast<uint32_t>(j * c1);
      c[2 * k + 1] = static_cast<uint32_t>((j + 1) * c1);
    }
    half = _mm256_load_si256(reinterpret_cast<const __m256i*>(h));
    jc1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c));
    sum = _mm256_setzero_si256();
  }

  NZ_TARGET_AVX2 uint64_t total() const {
    // Summed as unsigned 64-bit values: the hash wants wrap-around.
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
  }
};

// Adds the terms of the 8 words in `w` (word i of the group in u32 lane i).
//
// Until the second multiply the words stay one per dword: lane i holds the
// low or the high half of word i's z (LO, HI). The 32 x 32 -> 64 products
// (vpmuludq) come for the even lanes and, after a shift, the odd ones; their
// high halves, blended back into dword lanes, give mulhi, which AVX2 lacks.
// In this form z ^= z >> 33 is LO ^= HI >> 1 for all 8 words at once (the
// high half does not change), and both cross products of the second
// multiply, LO * c2_hi + HI * c2_lo, are one add of two vpmulld. The second
// multiply's results then go to 64-bit lanes (even and odd words) for the
// last xorshift and the sum. 30 instructions per 8 words (34 when each
// 64-bit lane carried its two words through both multiplies).
NZ_TARGET_AVX2 inline void hash_words(const HashConsts& k, HashIndex& h, __m256i w) {
  // z ^= z >> 33: only the low half changes, by j >> 1.
  const __m256i lo1 = _mm256_xor_si256(w, h.half);
  // z *= c1: lo = lo1 * c1_lo, hi = mulhi(lo1, c1_lo) + lo1 * c1_hi + j * c1_lo.
  const __m256i pe = _mm256_mul_epu32(lo1, k.c1_lo);
  const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(lo1, 32), k.c1_lo);
  const __m256i mulhi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
  const __m256i lo2 = _mm256_mullo_epi32(lo1, k.c1_lo);
  const __m256i hi2 = _mm256_add_epi32(_mm256_add_epi32(mulhi, _mm256_mullo_epi32(lo1, k.c1_hi)), h.jc1);
  // z ^= z >> 33.
  const __m256i lo3 = _mm256_xor_si256(lo2, _mm256_srli_epi32(hi2, 1));
  // z *= c2, into 64-bit lanes: lo3 * c2_lo + (lo3 * c2_hi + hi2 * c2_lo) << 32.
  const __m256i cross = _mm256_add_epi32(_mm256_mullo_epi32(lo3, k.c2_hi), _mm256_mullo_epi32(hi2, k.c2_lo));
  __m256i even = _mm256_add_epi64(_mm256_mul_epu32(lo3, k.c2_lo), _mm256_slli_epi64(cross, 32));
  __m256i odd = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(lo3, 32), k.c2_lo),
                                 _mm256_and_si256(cross, k.high_dword));
  // z ^= z >> 33, and the sum.
  even = _mm256_xor_si256(even, _mm256_srli_epi64(even, 33));
  odd = _mm256_xor_si256(odd, _mm256_srli_epi64(odd, 33));
  h.sum = _mm256_add_epi64(h.sum, _mm256_add_epi64(even, odd));
  h.half = _mm256_add_epi32(h.half, k.half_step);
  h.jc1 = _mm256_add_epi32(h.jc1, k.c1_step);
}

}  // namespace nz::codec::avx2
