#include "codec/hash.h"

#include <cstring>

namespace nz::codec {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
uint64_t hash_sum_words_avx512(const uint8_t* bytes, size_t words, uint64_t first_word, size_t* done);
// `first_word` even.
uint64_t hash_sum_words_avx2(const uint8_t* bytes, size_t words, uint64_t first_word, size_t* done);
#endif

namespace {

uint64_t sum_words_scalar(const uint8_t* bytes, size_t words, uint64_t first_word) {
  // Four independent sums so the multiplies of neighbouring words overlap.
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t j = 0;
  for (; j + 4 <= words; j += 4) {
    uint32_t w[4];
    std::memcpy(w, bytes + 4 * j, 16);
    uint64_t idx = first_word + j;
    s0 += mix64((idx << 32) | w[0]);
    s1 += mix64(((idx + 1) << 32) | w[1]);
    s2 += mix64(((idx + 2) << 32) | w[2]);
    s3 += mix64(((idx + 3) << 32) | w[3]);
  }
  for (; j < words; ++j) {
    uint32_t w;
    std::memcpy(&w, bytes + 4 * j, 4);
    s0 += mix64(((first_word + j) << 32) | w);
  }
  return s0 + s1 + s2 + s3;
}

}  // namespace

uint64_t hash_add_bytes(const void* data, size_t byte_len, uint64_t first_word, CpuLevel level) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  size_t full_words = byte_len / 4;
  uint64_t sum = 0;
  size_t done = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (full_words >= 64) {
    if (level == CpuLevel::kAvx512) {
      sum = hash_sum_words_avx512(bytes, full_words, first_word, &done);
    } else if (level == CpuLevel::kAvx2) {
      // The AVX2 loop pairs each even word with the odd one after it.
      const size_t skip = first_word % 2;
      sum = sum_words_scalar(bytes, skip, first_word);
      sum += hash_sum_words_avx2(bytes + 4 * skip, full_words - skip, first_word + skip, &done);
      done += skip;
    }
  }
#else
  (void)level;
#endif
  sum += sum_words_scalar(bytes + 4 * done, full_words - done, first_word + done);
  size_t tail = byte_len % 4;
  if (tail != 0) {
    uint32_t w = 0;
    std::memcpy(&w, bytes + 4 * full_words, tail);
    sum += mix64(((first_word + full_words) << 32) | w);
  }
  return sum;
}

uint64_t hash_add_bytes(const void* data, size_t byte_len, uint64_t first_word) {
  return hash_add_bytes(data, byte_len, first_word, cpu_level());
}

uint64_t nzhash(const void* data, size_t len, CpuLevel level) {
  return hash_seed(len) + hash_add_bytes(data, len, 0, level);
}

uint64_t nzhash(const void* data, size_t len) { return nzhash(data, len, cpu_level()); }

}  // namespace nz::codec
