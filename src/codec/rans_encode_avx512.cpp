// AVX-512 rANS encoder: 32 lanes = two vectors of 16 states, one step (32
// symbols, visited as in the reverse of the decode order) per iteration.
//
// * Renormalisation: the lanes that push are those with x >> (32 - P) >= f.
//   Within a step lanes push from 31 down to 0 into a stream written
//   backwards, so in memory the step's words are in increasing lane order:
//   one 16-bit compress (VBMI2) of the states' low halves under the 32-lane
//   mask, stored with a masked store just below the previous words.
// * Division: q = floor(x / f) in binary64, as floor(x * r + 2^-18) with
//   r = 1/f from vrcp14pd (relative error < 2^-14) and two Newton steps
//   (each squares the error, plus a rounding: below 2^-51 after the
//   second). After renormalisation q < 2^24, so x * r is within 2^-26 of
//   x / f, and a non-integer x / f is at least 1/f >= 2^-15 below the next
//   integer: adding 2^-18 makes the truncation exact, whatever the MXCSR
//   rounding mode. No table of reciprocals: its two 8-lane gathers per 16
//   states (and a second gather of the symbol entries) made this encoder
//   slower than the AVX2 one on Zen 5 (1.45 against 1.65 GB/s; now 2.1:
//   docs/RESULTS.md §1.7), and FMAs cost the same on every AVX-512 core.
// * Update: x' = (q << P) + (x - q f) + cum = x + cum + q (2^P - f).
// The output is identical to the scalar encoder's.
#include <cstring>

#include "codec/rans.h"
#include "codec/rans_encode_scalar.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#define NZ_TARGET_ENCODE __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi2,popcnt")))

namespace nz::codec {

namespace {

struct EncodeVectors {
  __m512i low16;        // 0xFFFF
  __m512i scale_shift;  // 32 - P, per lane
  __m512i one_p;        // 2^P
  __m512d nudge;        // 2^-18
};

// 1/f to within 2^-51 (relative), for f in [1, 2^15].
NZ_TARGET_ENCODE inline __m512d recip(__m512d f) {
  const __m512d one = _mm512_set1_pd(1.0);
  __m512d r = _mm512_rcp14_pd(f);
  r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(f, r, one), r);
  return _mm512_fmadd_pd(r, _mm512_fnmadd_pd(f, r, one), r);
}

// Advances 16 states by one symbol each (after renormalisation); `entry` =
// freq | cum << 16 of each lane's symbol (gathered once, for the
// renormalisation too).
NZ_TARGET_ENCODE inline __m512i encode_half(__m512i x, __m512i entry, const EncodeVectors& k) {
  const __m512i freq = _mm512_and_si512(entry, k.low16);
  const __m512i cum = _mm512_srli_epi32(entry, 16);
  const __m512d f_lo = _mm512_cvtepu32_pd(_mm512_castsi512_si256(freq));
  const __m512d f_hi = _mm512_cvtepu32_pd(_mm512_extracti64x4_epi64(freq, 1));
  const __m512d x_lo = _mm512_cvtepu32_pd(_mm512_castsi512_si256(x));
  const __m512d x_hi = _mm512_cvtepu32_pd(_mm512_extracti64x4_epi64(x, 1));
  const __m256i q_lo = _mm512_cvttpd_epu32(_mm512_fmadd_pd(x_lo, recip(f_lo), k.nudge));
  const __m256i q_hi = _mm512_cvttpd_epu32(_mm512_fmadd_pd(x_hi, recip(f_hi), k.nudge));
  const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q_lo), q_hi, 1);
  return _mm512_add_epi32(_mm512_add_epi32(x, cum), _mm512_mullo_epi32(q, _mm512_sub_epi32(k.one_p, freq)));
}

}  // namespace

NZ_TARGET_ENCODE bool rans_encode_avx512(const uint8_t* symbols, uint64_t n, const FreqTable& table,
                                         uint32_t states[kLanes], uint16_t* word_buf, uint64_t word_cap,
                                         uint64_t* word_count) {
  const RansEncodeSymbols params(table);
  alignas(64) uint32_t info[256];
  for (uint32_t s = 0; s < 256; ++s) info[s] = table.freq[s] | (table.cum[s] << 16);
  uint32_t xs[kLanes];
  for (uint32_t l = 0; l < kLanes; ++l) xs[l] = kRansLow;
  uint64_t out = word_cap;
  // The partial last step first (encoding runs backwards), then whole steps.
  const uint64_t full = n / kLanes * kLanes;
  if (!rans_encode_range(symbols, full, n, params, xs, word_buf, out)) return false;

  EncodeVectors k;
  k.low16 = _mm512_set1_epi32(0xFFFF);
  k.scale_shift = _mm512_set1_epi32(static_cast<int>(32 - table.prob_bits));
  k.one_p = _mm512_set1_epi32(static_cast<int>(1u << table.prob_bits));
  k.nudge = _mm512_set1_pd(1.0 / (1 << 18));
  // Byte 2i, 2i+1 of the packed vector: the low half of lane i's state.
  alignas(64) uint16_t pick[32];
  for (int i = 0; i < 32; ++i) pick[i] = static_cast<uint16_t>(i < 16 ? 2 * i : 32 + 2 * (i - 16));
  const __m512i low_halves = _mm512_load_si512(pick);
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(32 - table.prob_bits));

  __m512i x0 = _mm512_loadu_si512(xs);
  __m512i x1 = _mm512_loadu_si512(xs + 16);
  for (uint64_t t = full; t > 0;) {
    t -= kLanes;
    const __m512i s0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(symbols + t)));
    const __m512i s1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(symbols + t + 16)));
    // Renormalise: x >= f << (32 - P)  <=>  x >> (32 - P) >= f.
    const __m512i e0 = _mm512_i32gather_epi32(s0, info, 4), e1 = _mm512_i32gather_epi32(s1, info, 4);
    const __m512i f0 = _mm512_and_si512(e0, k.low16);
    const __m512i f1 = _mm512_and_si512(e1, k.low16);
    const __mmask16 m0 = _mm512_cmpge_epu32_mask(_mm512_srl_epi32(x0, shift), f0);
    const __mmask16 m1 = _mm512_cmpge_epu32_mask(_mm512_srl_epi32(x1, shift), f1);
    const uint32_t m = static_cast<uint32_t>(m0) | (static_cast<uint32_t>(m1) << 16);
    if (m != 0) {
      const uint32_t count = static_cast<uint32_t>(__builtin_popcount(m));
      if (out < count) return false;
      out -= count;
      const __m512i low = _mm512_permutex2var_epi16(x0, low_halves, x1);
      const __mmask32 store_mask = count == 32 ? 0xFFFFFFFFu : ((1u << count) - 1);
      _mm512_mask_storeu_epi16(word_buf + out, store_mask, _mm512_maskz_compress_epi16(m, low));
      x0 = _mm512_mask_srli_epi32(x0, m0, x0, 16);
      x1 = _mm512_mask_srli_epi32(x1, m1, x1, 16);
    }
    x0 = encode_half(x0, e0, k);
    x1 = encode_half(x1, e1, k);
  }
  _mm512_storeu_si512(states, x0);
  _mm512_storeu_si512(states + 16, x1);
  *word_count = word_cap - out;
  return true;
}

}  // namespace nz::codec

#else

namespace nz::codec {
bool rans_encode_avx512(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                        uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count) {
  return rans_encode_scalar(symbols, n, table, states, word_buf, word_cap, word_count);
}
}  // namespace nz::codec

#endif
