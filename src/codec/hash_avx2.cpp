// AVX2 nzhash: eight words per iteration (hash_avx2.h has the arithmetic).
#include "codec/hash.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "codec/hash_avx2.h"

namespace nz::codec {

NZ_TARGET_AVX2 uint64_t hash_sum_words_avx2(const uint8_t* bytes, size_t words, uint64_t first_word, size_t* done) {
  const avx2::HashConsts k;
  avx2::HashIndex h(first_word);
  size_t j = 0;
  for (; j + 8 <= words; j += 8) {
    avx2::hash_words(k, h, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes + 4 * j)));
  }
  *done = j;
  return h.total();
}

}  // namespace nz::codec

#endif
