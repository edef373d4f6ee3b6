// The part of the fused AVX-512 decoders (bf16, fp16/fp32) that does not
// depend on the element type: the rANS step on 2 x 16 lanes, the nzhash mix
// tail, the per-call constants of both, and a chunk's stream state.
//
// Include only from a translation unit that has already checked for an
// x86-64 GCC/Clang build (the decoders' #if) and included <immintrin.h>.
// Everything here is inline with the decoders' target attribute, so it
// inlines into their hot loops exactly as the code it replaces did.
#pragma once

#if !defined(__x86_64__) || !(defined(__GNUC__) || defined(__clang__))
#error "rans_step_avx512.h is for the x86-64 GCC/Clang build of the fused decoders only"
#endif

#include <immintrin.h>

#include <cstdint>

#include "codec/rans.h"

#define NZ_TARGET_AVX512_FUSED \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vbmi2,popcnt")))

namespace nz::codec::fused {

// mix64 of (j << 32) | w without its first step: z ^ (z >> 33) of such a
// value is ((j << 32) ^ (j >> 1)) ^ w, so the caller xors w into the
// precomputed index term ((j << 32) ^ (j >> 1)) and saves a shift and an xor.
NZ_TARGET_AVX512_FUSED inline __m512i mix64x8_tail(__m512i z, __m512i c1, __m512i c2) {
  z = _mm512_mullo_epi64(z, c1);
  z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 33));
  z = _mm512_mullo_epi64(z, c2);
  return _mm512_xor_si512(z, _mm512_srli_epi64(z, 33));
}

// Constants of the rANS step and the hash, built once per call. The
// decoders derive their own constants from this.
struct StepConsts {
  __m512i slot_mask, low, bias_mask, one, c1, c2, odd_word, low32;
  __m128i prob_shift;
  const int* tab;

  NZ_TARGET_AVX512_FUSED explicit StepConsts(const DecodeTable& table) {
    slot_mask = _mm512_set1_epi32(static_cast<int>((1u << table.prob_bits) - 1));
    low = _mm512_set1_epi32(static_cast<int>(kRansLow));
    bias_mask = _mm512_set1_epi32(0xFFF);
    one = _mm512_set1_epi32(1);
    prob_shift = _mm_cvtsi32_si128(static_cast<int>(table.prob_bits));
    tab = reinterpret_cast<const int*>(table.packed.data());
    c1 = _mm512_set1_epi64(static_cast<long long>(0xFF51AFD7ED558CCDull));
    c2 = _mm512_set1_epi64(static_cast<long long>(0xC4CEB9FE1A85EC53ull));
    odd_word = _mm512_set1_epi64(1ll << 32);
    low32 = _mm512_set1_epi64(0xFFFFFFFFll);
  }
};

// One chunk's stream in registers. The decoders derive their stream from
// this and add the merge, store and hash of their element type.
struct StreamState {
  __m512i x0, x1;
  // The 16 output words of a hash step, as 64-bit lanes: the even words
  // (j = base + 2k, base even) are the low halves, the odd ones the high
  // halves. index_even holds (j << 32) ^ (j >> 1) of the even words; an odd
  // word's term is that plus 1 << 32, since (j + 1) >> 1 = j >> 1. sum is
  // the running sum of hash terms.
  // Few registers per stream, so that two streams fit without spilling.
  __m512i index_even, sum;
  uint64_t pos;
  uint64_t word_count;
  const uint8_t* words;
  const uint8_t* raw;
  uint8_t* dst;

  NZ_TARGET_AVX512_FUSED StreamState(const RansDecoder& dec, const uint8_t* raw_section, uint8_t* out,
                                     uint64_t first_word)
      : pos(dec.pos), word_count(dec.word_count), words(dec.words), raw(raw_section), dst(out) {
    x0 = _mm512_loadu_si512(dec.x);
    x1 = _mm512_loadu_si512(dec.x + 16);
    alignas(64) uint64_t even_init[8];
    for (uint64_t k = 0; k < 8; ++k) {
      const uint64_t je = first_word + 2 * k;
      even_init[k] = (je << 32) ^ (je >> 1);
    }
    index_even = _mm512_load_si512(even_init);
    sum = _mm512_setzero_si512();
  }

  // A step reads at most 32 words: while 32 x steps remain, the 64-byte loads
  // of that many steps stay inside the stream.
  bool can_step(uint64_t steps = 1) const { return pos + kLanes * steps <= word_count; }

  NZ_TARGET_AVX512_FUSED void save(RansDecoder& dec) const {
    _mm512_storeu_si512(dec.x, x0);
    _mm512_storeu_si512(dec.x + 16, x1);
    dec.pos = pos;
  }

  NZ_TARGET_AVX512_FUSED uint64_t hash_sum() const {
    // Summed as unsigned: _mm512_reduce_add_epi64 adds signed 64-bit values,
    // which overflow (undefined behaviour) where the hash wants wrap-around.
    alignas(64) uint64_t lanes[8];
    _mm512_store_si512(lanes, sum);
    uint64_t total = 0;
    for (uint64_t v : lanes) total += v;
    return total;
  }

  // The rANS step of docs/FORMAT.md 4.1 on all 32 lanes; returns the table
  // entries (symbol in bits 24-31) of lanes 0-15 and 16-31. Both halves take
  // their renormalisation words with one 16-bit expand under the combined
  // mask, so the second half does not wait for the popcount of the first.
  NZ_TARGET_AVX512_FUSED inline void rans_step(const StepConsts& k, __m512i& e0, __m512i& e1) {
    e0 = _mm512_i32gather_epi32(_mm512_and_si512(x0, k.slot_mask), k.tab, 4);
    e1 = _mm512_i32gather_epi32(_mm512_and_si512(x1, k.slot_mask), k.tab, 4);
    const __m512i f0 = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(e0, 12), k.bias_mask), k.one);
    const __m512i f1 = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(e1, 12), k.bias_mask), k.one);
    x0 = _mm512_add_epi32(_mm512_mullo_epi32(f0, _mm512_srl_epi32(x0, k.prob_shift)), _mm512_and_si512(e0, k.bias_mask));
    x1 = _mm512_add_epi32(_mm512_mullo_epi32(f1, _mm512_srl_epi32(x1, k.prob_shift)), _mm512_and_si512(e1, k.bias_mask));
    const __mmask16 m0 = _mm512_cmplt_epu32_mask(x0, k.low);
    const __mmask16 m1 = _mm512_cmplt_epu32_mask(x1, k.low);
    const uint32_t m = static_cast<uint32_t>(m0) | (static_cast<uint32_t>(m1) << 16);
    const __m512i w = _mm512_loadu_si512(words + 2 * pos);
    const __m512i next = _mm512_maskz_expand_epi16(m, w);
    x0 = _mm512_mask_or_epi32(x0, m0, _mm512_slli_epi32(x0, 16), _mm512_cvtepu16_epi32(_mm512_castsi512_si256(next)));
    x1 = _mm512_mask_or_epi32(x1, m1, _mm512_slli_epi32(x1, 16),
                              _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(next, 1)));
    pos += static_cast<uint64_t>(__builtin_popcount(m));
  }
};

}  // namespace nz::codec::fused
