// AVX2 rANS encoder: 32 lanes = four vectors of 8 states, one step (32
// symbols, visited as in the reverse of the decode order) per iteration.
// The output is identical to the scalar encoder's (rans_encode_scalar.h).
//
// * Renormalisation: the lanes that push are those with x >> (32 - P) >= f.
//   Within a step lanes push from 31 down to 0 into a stream written
//   backwards, so in memory a step's words are in increasing lane order.
//   Per vector: the low halves of the 8 states are packed into 8 words and
//   a byte shuffle chosen by the 8-bit lane mask moves the pushing lanes'
//   words, in lane order, to the top of those 8; all 16 bytes are stored
//   just below the words already written. The words below the pushed ones
//   are garbage that the next store (or nothing, below the stream's start)
//   overwrites, so the buffer must keep 8 words of room: steps run here only
//   while 32 words are left, the scalar encoder does the rest.
// * Division: q = floor(x / f) as a binary64 division, truncated. x < 2^32
//   and f are exact in binary64, the division is correctly rounded, and a
//   non-integer x / f is at least 1/f >= 2^-15 below the next integer while
//   q < 2^24 (x < f << (32 - P) after renormalisation), so the rounding
//   never reaches it: the truncation is exact, whatever the rounding mode.
//   (No reciprocal table: on Zen 3 a 4-lane gather of reciprocals costs
//   more than the divide.)
// * Update: x' = (q << P) + (x - q f) + cum = x + cum + q (2^P - f).
#include <array>
#include <cstring>

#include "codec/rans.h"
#include "codec/rans_encode_scalar.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "codec/simd_avx2.h"

namespace nz::codec {

namespace {

// For each 8-bit lane mask with c lanes set: a byte shuffle of 8 packed
// words that puts the words of the set lanes, in lane order, in words
// 8 - c .. 7 (the rest: zero).
struct CompressTable {
  alignas(16) std::array<std::array<uint8_t, 16>, 256> shuffle;
};

constexpr CompressTable make_compress_table() {
  CompressTable t{};
  for (uint32_t m = 0; m < 256; ++m) {
    uint32_t count = 0;
    for (uint32_t i = 0; i < 8; ++i) count += (m >> i) & 1u;
    for (auto& b : t.shuffle[m]) b = 0x80;
    uint32_t slot = 8 - count;
    for (uint32_t i = 0; i < 8; ++i) {
      if (((m >> i) & 1u) == 0) continue;
      t.shuffle[m][2 * slot] = static_cast<uint8_t>(2 * i);
      t.shuffle[m][2 * slot + 1] = static_cast<uint8_t>(2 * i + 1);
      ++slot;
    }
  }
  return t;
}

constexpr CompressTable kCompress = make_compress_table();

struct EncodeConsts {
  __m256i low16;         // 0xFFFF
  __m256i one_p;         // 2^P
  __m256i sign;          // 0x80000000
  __m256i low_words;     // byte shuffle: the low halves of a 128-bit half's 4 states into its low 8 bytes
  __m256d two31;         // 2^31
  __m128i scale_shift;   // 32 - P
  __m128i prob_shift;    // P
  const int* info;       // freq | cum << 16, per symbol

  NZ_TARGET_AVX2 EncodeConsts(const FreqTable& table, const uint32_t* info_table) : info(reinterpret_cast<const int*>(info_table)) {
    low16 = _mm256_set1_epi32(0xFFFF);
    one_p = _mm256_set1_epi32(static_cast<int>(1u << table.prob_bits));
    sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    low_words = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                 0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    two31 = _mm256_set1_pd(2147483648.0);
    scale_shift = _mm_cvtsi32_si128(static_cast<int>(32 - table.prob_bits));
    prob_shift = _mm_cvtsi32_si128(static_cast<int>(table.prob_bits));
  }
};

// 4 u32 (as int32 after flipping the top bit) to binary64, exactly.
NZ_TARGET_AVX2 inline __m256d u32_to_f64(__m128i flipped, __m256d two31) {
  return _mm256_add_pd(_mm256_cvtepi32_pd(flipped), two31);
}

// Encodes one symbol on each of 8 lanes; pushes the renormalisation words
// below word_buf[out] and lowers out.
NZ_TARGET_AVX2 inline __m256i encode_vector(const EncodeConsts& k, __m256i x, const uint8_t* symbols,
                                            uint16_t* word_buf, uint64_t& out) {
  const __m256i sym = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(symbols)));
  const __m256i info = _mm256_i32gather_epi32(k.info, sym, 4);
  const __m256i f = _mm256_and_si256(info, k.low16);
  // Renormalise where x >> (32 - P) >= f (both below 2^16: a signed compare is right).
  const __m256i keep = _mm256_cmpgt_epi32(f, _mm256_srl_epi32(x, k.scale_shift));
  const uint32_t push = ~static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(keep))) & 0xFFu;
  const __m256i words = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(x, k.low_words), 0x08);
  const __m128i pushed = _mm_shuffle_epi8(_mm256_castsi256_si128(words),
                                          _mm_load_si128(reinterpret_cast<const __m128i*>(kCompress.shuffle[push].data())));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(word_buf + out - 8), pushed);
  out -= static_cast<uint64_t>(__builtin_popcount(push));
  x = _mm256_blendv_epi8(_mm256_srli_epi32(x, 16), x, keep);

  // q = floor(x / f) in binary64.
  const __m256i flipped = _mm256_xor_si256(x, k.sign);
  const __m256d q_lo = _mm256_div_pd(u32_to_f64(_mm256_castsi256_si128(flipped), k.two31),
                                     _mm256_cvtepi32_pd(_mm256_castsi256_si128(f)));
  const __m256d q_hi = _mm256_div_pd(u32_to_f64(_mm256_extracti128_si256(flipped, 1), k.two31),
                                     _mm256_cvtepi32_pd(_mm256_extracti128_si256(f, 1)));
  const __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm256_cvttpd_epi32(q_lo)), _mm256_cvttpd_epi32(q_hi), 1);
  // x + cum + q (2^P - f)
  const __m256i cum = _mm256_srli_epi32(info, 16);
  return _mm256_add_epi32(_mm256_add_epi32(x, cum), _mm256_mullo_epi32(q, _mm256_sub_epi32(k.one_p, f)));
}

}  // namespace

NZ_TARGET_AVX2 bool rans_encode_avx2(const uint8_t* symbols, uint64_t n, const FreqTable& table,
                                     uint32_t states[kLanes], uint16_t* word_buf, uint64_t word_cap,
                                     uint64_t* word_count) {
  const RansEncodeSymbols params(table);
  alignas(32) uint32_t info[256];
  for (uint32_t s = 0; s < 256; ++s) info[s] = table.freq[s] | (table.cum[s] << 16);
  alignas(32) uint32_t xs[kLanes];
  for (uint32_t l = 0; l < kLanes; ++l) xs[l] = kRansLow;
  uint64_t out = word_cap;
  // The partial last step first (encoding runs backwards), then whole steps.
  const uint64_t full = n / kLanes * kLanes;
  if (!rans_encode_range(symbols, full, n, params, xs, word_buf, out)) return false;

  const EncodeConsts k(table, info);
  __m256i x[4];
  for (int q = 0; q < 4; ++q) x[q] = _mm256_load_si256(reinterpret_cast<const __m256i*>(xs + 8 * q));
  uint64_t t = full;
  // A step pushes at most 32 words.
  while (t > 0 && out >= kLanes) {
    t -= kLanes;
#pragma GCC unroll 4
    for (int q = 3; q >= 0; --q) x[q] = encode_vector(k, x[q], symbols + t + 8 * q, word_buf, out);
  }
  for (int q = 0; q < 4; ++q) _mm256_store_si256(reinterpret_cast<__m256i*>(xs + 8 * q), x[q]);
  // Near the end of the word budget: the rest one symbol at a time (it fails if the budget runs out).
  if (!rans_encode_range(symbols, 0, t, params, xs, word_buf, out)) return false;
  std::memcpy(states, xs, sizeof(xs));
  *word_count = word_cap - out;
  return true;
}

}  // namespace nz::codec

#else

namespace nz::codec {
bool rans_encode_avx2(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                      uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count) {
  return rans_encode_scalar(symbols, n, table, states, word_buf, word_cap, word_count);
}
}  // namespace nz::codec

#endif
