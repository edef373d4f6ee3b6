// AVX-512 rANS decoder: 32 lanes = two vectors of 16 states. Per half-step:
// one gather from the packed slot table, one multiply-add, and the lanes that
// renormalise take the next words in lane order with one expand (this is why
// the format reads words in increasing lane order within a step).
#include <cstring>

#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12 warns about its own _mm512_undefined_* inside the intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace nz::codec {

namespace {

struct Avx512Consts {
  __m512i slot_mask;
  __m512i low;
  __m512i bias_mask;
  __m512i one;
  __m128i prob_shift;
};

__attribute__((target("avx512f,avx512bw,avx512vl,popcnt"))) inline __m512i decode_half(
    __m512i x, const Avx512Consts& k, const int* table, const uint8_t* words, uint64_t& pos,
    uint8_t* out) {
  __m512i slot = _mm512_and_si512(x, k.slot_mask);
  __m512i e = _mm512_i32gather_epi32(slot, table, 4);
  __m512i freq = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(e, 12), k.bias_mask), k.one);
  __m512i bias = _mm512_and_si512(e, k.bias_mask);
  x = _mm512_add_epi32(_mm512_mullo_epi32(freq, _mm512_srl_epi32(x, k.prob_shift)), bias);
  __mmask16 renorm = _mm512_cmplt_epu32_mask(x, k.low);
  __m512i next = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + 2 * pos)));
  next = _mm512_maskz_expand_epi32(renorm, next);
  x = _mm512_mask_or_epi32(x, renorm, _mm512_slli_epi32(x, 16), next);
  pos += static_cast<uint64_t>(__builtin_popcount(renorm));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(_mm512_srli_epi32(e, 24)));
  return x;
}

}  // namespace

__attribute__((target("avx512f,avx512bw,avx512vl,popcnt"))) bool rans_decode_avx512(
    RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count) {
  if (!table.has_packed) return rans_decode_scalar(dec, table, out, count);
  Avx512Consts k;
  k.slot_mask = _mm512_set1_epi32(static_cast<int>((1u << table.prob_bits) - 1));
  k.low = _mm512_set1_epi32(static_cast<int>(kRansLow));
  k.bias_mask = _mm512_set1_epi32(0xFFF);
  k.one = _mm512_set1_epi32(1);
  k.prob_shift = _mm_cvtsi32_si128(static_cast<int>(table.prob_bits));
  const int* tab = reinterpret_cast<const int*>(table.packed.data());

  __m512i x0 = _mm512_loadu_si512(dec.x);
  __m512i x1 = _mm512_loadu_si512(dec.x + 16);
  uint64_t pos = dec.pos;
  const uint64_t full_steps = count / kLanes;
  uint64_t step = 0;
  // Each step reads at most 32 words, so while 32 remain the vector loads stay
  // inside the stream; the tail goes to the scalar decoder.
  for (; step < full_steps && pos + kLanes <= dec.word_count; ++step) {
    x0 = decode_half(x0, k, tab, dec.words, pos, out + step * kLanes);
    x1 = decode_half(x1, k, tab, dec.words, pos, out + step * kLanes + 16);
  }
  _mm512_storeu_si512(dec.x, x0);
  _mm512_storeu_si512(dec.x + 16, x1);
  dec.pos = pos;
  const uint64_t done = step * kLanes;
  return rans_decode_scalar(dec, table, out + done, count - done);
}

}  // namespace nz::codec

#else

namespace nz::codec {
bool rans_decode_avx512(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count) {
  return rans_decode_scalar(dec, table, out, count);
}
}  // namespace nz::codec

#endif
