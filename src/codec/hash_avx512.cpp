// AVX-512 nzhash: eight (index, word) pairs mixed per iteration with 64-bit
// multiplies (AVX512DQ). Same sums as the scalar code, in any order.
#include "codec/hash.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

namespace nz::codec {

__attribute__((target("avx512f,avx512dq"))) uint64_t hash_sum_words_avx512(const uint8_t* bytes, size_t words,
                                                                          uint64_t first_word, size_t* done) {
  const __m512i c1 = _mm512_set1_epi64(static_cast<long long>(0xFF51AFD7ED558CCDull));
  const __m512i c2 = _mm512_set1_epi64(static_cast<long long>(0xC4CEB9FE1A85EC53ull));
  const __m512i step = _mm512_set1_epi64(8ll << 32);
  __m512i index = _mm512_slli_epi64(
      _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(first_word)), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7)),
      32);
  __m512i sum = _mm512_setzero_si512();
  size_t j = 0;
  for (; j + 8 <= words; j += 8) {
    __m512i z = _mm512_or_si512(index, _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes + 4 * j))));
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 33));
    z = _mm512_mullo_epi64(z, c1);
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 33));
    z = _mm512_mullo_epi64(z, c2);
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 33));
    sum = _mm512_add_epi64(sum, z);
    index = _mm512_add_epi64(index, step);
  }
  *done = j;
  // Summed as unsigned: _mm512_reduce_add_epi64 adds signed 64-bit values,
  // which overflow (undefined behaviour) where the hash wants wrap-around.
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, sum);
  uint64_t total = 0;
  for (uint64_t v : lanes) total += v;
  return total;
}

}  // namespace nz::codec

#endif
