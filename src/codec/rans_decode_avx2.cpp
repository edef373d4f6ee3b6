// AVX2 rANS decoder: 32 lanes = four vectors of 8 states. AVX2 has no
// expand, so the renormalising lanes pick their words with a permutation
// from a 256-entry table indexed by the lane mask.
#include <array>
#include <cstring>

#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

namespace nz::codec {

namespace {

// For each 8-bit lane mask: lane i takes word popcount(mask & ((1 << i) - 1)).
constexpr std::array<uint64_t, 256> make_expand_table() {
  std::array<uint64_t, 256> t{};
  for (uint32_t m = 0; m < 256; ++m) {
    uint64_t v = 0;
    uint32_t next = 0;
    for (uint32_t i = 0; i < 8; ++i) {
      if (m & (1u << i)) v |= uint64_t{next++} << (8 * i);
    }
    t[m] = v;
  }
  return t;
}
constexpr std::array<uint64_t, 256> kExpand = make_expand_table();

struct Avx2Consts {
  __m256i slot_mask;
  __m256i bias_mask;
  __m256i one;
  __m128i prob_shift;
};

__attribute__((target("avx2,popcnt"))) inline __m256i decode_quarter(__m256i x, const Avx2Consts& k,
                                                                     const int* table,
                                                                     const uint8_t* words,
                                                                     uint64_t& pos, uint8_t* out) {
  __m256i slot = _mm256_and_si256(x, k.slot_mask);
  __m256i e = _mm256_i32gather_epi32(table, slot, 4);
  __m256i freq = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(e, 12), k.bias_mask), k.one);
  __m256i bias = _mm256_and_si256(e, k.bias_mask);
  x = _mm256_add_epi32(_mm256_mullo_epi32(freq, _mm256_srl_epi32(x, k.prob_shift)), bias);
  __m256i is_low = _mm256_cmpeq_epi32(_mm256_srli_epi32(x, 16), _mm256_setzero_si256());
  uint32_t renorm = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(is_low)));
  __m256i next = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(words + 2 * pos)));
  __m256i perm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(kExpand[renorm])));
  next = _mm256_permutevar8x32_epi32(next, perm);
  x = _mm256_blendv_epi8(x, _mm256_or_si256(_mm256_slli_epi32(x, 16), next), is_low);
  pos += static_cast<uint64_t>(__builtin_popcount(renorm));
  // Symbols are the high bytes of e: gather them into the first 8 bytes.
  __m256i bytes = _mm256_shuffle_epi8(
      e, _mm256_setr_epi8(3, 7, 11, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 3, 7, 11, 15, -1,
                          -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
  uint32_t lo = static_cast<uint32_t>(_mm256_extract_epi32(bytes, 0));
  uint32_t hi = static_cast<uint32_t>(_mm256_extract_epi32(bytes, 4));
  std::memcpy(out, &lo, 4);
  std::memcpy(out + 4, &hi, 4);
  return x;
}

}  // namespace

__attribute__((target("avx2,popcnt"))) bool rans_decode_avx2(RansDecoder& dec, const DecodeTable& table,
                                                             uint8_t* out, uint64_t count) {
  if (!table.has_packed) return rans_decode_scalar(dec, table, out, count);
  Avx2Consts k;
  k.slot_mask = _mm256_set1_epi32(static_cast<int>((1u << table.prob_bits) - 1));
  k.bias_mask = _mm256_set1_epi32(0xFFF);
  k.one = _mm256_set1_epi32(1);
  k.prob_shift = _mm_cvtsi32_si128(static_cast<int>(table.prob_bits));
  const int* tab = reinterpret_cast<const int*>(table.packed.data());
  __m256i x[4];
  for (int q = 0; q < 4; ++q) x[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dec.x + 8 * q));
  uint64_t pos = dec.pos;
  const uint64_t full_steps = count / kLanes;
  uint64_t step = 0;
  for (; step < full_steps && pos + kLanes <= dec.word_count; ++step) {
    uint8_t* o = out + step * kLanes;
    x[0] = decode_quarter(x[0], k, tab, dec.words, pos, o);
    x[1] = decode_quarter(x[1], k, tab, dec.words, pos, o + 8);
    x[2] = decode_quarter(x[2], k, tab, dec.words, pos, o + 16);
    x[3] = decode_quarter(x[3], k, tab, dec.words, pos, o + 24);
  }
  for (int q = 0; q < 4; ++q) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dec.x + 8 * q), x[q]);
  dec.pos = pos;
  const uint64_t done = step * kLanes;
  return rans_decode_scalar(dec, table, out + done, count - done);
}

}  // namespace nz::codec

#else

namespace nz::codec {
bool rans_decode_avx2(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count) {
  return rans_decode_scalar(dec, table, out, count);
}
}  // namespace nz::codec

#endif
