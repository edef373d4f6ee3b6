// Fused AVX-512 decoder for bf16 rANS chunks: rANS symbols, the merge with
// the raw values and (when the merged element is the output: lossless, or
// lossy without blocks) the nzhash sum in one pass, so the output is written
// once and hashed while it is still in registers.
//
// Why fused: one rANS step is a latency chain (gather -> multiply -> compare
// -> expand) on only two independent vectors of states, which leaves most
// execution ports idle. The merge and the hash of the previous step are
// independent of that chain and fill those idle slots almost for free,
// instead of costing separate passes over the chunk.
//
// Both halves of a step take their renormalisation words with one 16-bit
// expand (VBMI2) under the combined 32-lane mask, so the second half does not
// wait for the popcount of the first.
#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#define NZ_TARGET_BF16_FUSED \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vbmi2,popcnt")))

namespace nz::codec {

bool rans_bf16_fused_supported() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2");
  return ok;
}

namespace {

// mix64 of (j << 32) | w without its first step: z ^ (z >> 33) of such a
// value is ((j << 32) ^ (j >> 1)) ^ w, so the caller xors w into the
// precomputed index term ((j << 32) ^ (j >> 1)) and saves a shift and an xor.
NZ_TARGET_BF16_FUSED inline __m512i mix64x8_tail(__m512i z, __m512i c1, __m512i c2) {
  z = _mm512_mullo_epi64(z, c1);
  z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 33));
  z = _mm512_mullo_epi64(z, c2);
  return _mm512_xor_si512(z, _mm512_srli_epi64(z, 33));
}

// Raw values of one step as 32 u16 lanes. Lossless (R = 8): bytes. Lossy
// (R = K + 1 <= 7): the step's 4R bytes, each lane picking the two bytes
// around its bit offset iR and shifting. Returned aligned as the lossless
// byte (sign in bit 7, kept mantissa bits below it, dropped bits zero).
struct RawUnpacker {
  uint32_t raw_bits;
  __m512i pair_pick;  // lossy: byte 2i, 2i+1 = bytes iR/8, iR/8 + 1
  __m512i shifts;     // lossy: u16 lane i = iR % 8
  __m512i field_mask;
  __m128i align;      // lossy: 8 - R

  NZ_TARGET_BF16_FUSED explicit RawUnpacker(uint32_t r) : raw_bits(r) {
    alignas(64) uint8_t pick[64];
    alignas(64) uint16_t sh[32];
    for (uint32_t i = 0; i < 32; ++i) {
      pick[2 * i] = static_cast<uint8_t>(i * r / 8);
      pick[2 * i + 1] = static_cast<uint8_t>(i * r / 8 + 1);
      sh[i] = static_cast<uint16_t>(i * r % 8);
    }
    pair_pick = _mm512_load_si512(pick);
    shifts = _mm512_load_si512(sh);
    field_mask = _mm512_set1_epi16(static_cast<short>((1u << r) - 1));
    align = _mm_cvtsi32_si128(static_cast<int>(8 - r));
  }

  template <bool kLossless>
  NZ_TARGET_BF16_FUSED __m512i step(const uint8_t* raw, uint64_t step_index) const {
    if constexpr (kLossless) {
      return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw + 32 * step_index)));
    } else {
      // 4R <= 28 bytes; the masked load never reads past them.
      const __mmask64 bytes = (uint64_t{1} << (4 * raw_bits)) - 1;
      const __m512i packed = _mm512_maskz_loadu_epi8(bytes, raw + 4 * raw_bits * step_index);
      const __m512i fields =
          _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi8(pair_pick, packed), shifts), field_mask);
      return _mm512_sll_epi16(fields, align);
    }
  }
};

template <bool kLossless, bool kHash>
NZ_TARGET_BF16_FUSED uint64_t decode_bf16_steps(RansDecoder& dec, const DecodeTable& table, const uint8_t* raw,
                                                uint32_t raw_bits, uint8_t* dst, uint64_t count,
                                                uint64_t first_word, uint64_t* hash_sum) {
  const RawUnpacker unpack(raw_bits);
  const __m512i slot_mask = _mm512_set1_epi32(static_cast<int>((1u << table.prob_bits) - 1));
  const __m512i low = _mm512_set1_epi32(static_cast<int>(kRansLow));
  const __m512i bias_mask = _mm512_set1_epi32(0xFFF);
  const __m512i one = _mm512_set1_epi32(1);
  const __m128i prob_shift = _mm_cvtsi32_si128(static_cast<int>(table.prob_bits));
  const int* tab = reinterpret_cast<const int*>(table.packed.data());
  // Byte 2i of the merged vector is the symbol of lane i (byte 3 of its
  // table entry, in e0 for lanes 0-15 and e1 for 16-31); odd bytes are zeroed.
  alignas(64) uint8_t pick[64];
  for (int i = 0; i < 32; ++i) {
    pick[2 * i] = static_cast<uint8_t>(i < 16 ? 4 * i + 3 : 64 + 4 * (i - 16) + 3);
    pick[2 * i + 1] = 0;
  }
  const __m512i sym_pick = _mm512_load_si512(pick);
  const __m512i low7 = _mm512_set1_epi16(0x7F);
  const __m512i sign = _mm512_set1_epi16(static_cast<short>(0x8000));
  const __m512i c1 = _mm512_set1_epi64(static_cast<long long>(0xFF51AFD7ED558CCDull));
  const __m512i c2 = _mm512_set1_epi64(static_cast<long long>(0xC4CEB9FE1A85EC53ull));
  // The 16 output words of a step, as 64-bit lanes: the even words (j = base + 2k)
  // are the low halves, the odd ones (base + 2k + 1) the high halves.
  // index_even/odd hold (j << 32) ^ (j >> 1) for their words; a step adds 16
  // to j, i.e. 16 << 32 to the high part and 8 to j >> 1 (j >> 1 < 2^31, so
  // no carry crosses between the parts).
  const __m512i index_step = _mm512_set1_epi64((16ll << 32) + 8);
  const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFFll);
  alignas(64) uint64_t even_init[8], odd_init[8];
  for (uint64_t k = 0; k < 8; ++k) {
    const uint64_t je = first_word + 2 * k, jo = je + 1;
    even_init[k] = (je << 32) ^ (je >> 1);
    odd_init[k] = (jo << 32) ^ (jo >> 1);
  }
  __m512i index_even = _mm512_load_si512(even_init);
  __m512i index_odd = _mm512_load_si512(odd_init);
  __m512i sum_lo = _mm512_setzero_si512();
  __m512i sum_hi = _mm512_setzero_si512();

  __m512i x0 = _mm512_loadu_si512(dec.x);
  __m512i x1 = _mm512_loadu_si512(dec.x + 16);
  uint64_t pos = dec.pos;
  const uint64_t full_steps = count / kLanes;
  uint64_t step = 0;
  // A step reads at most 32 words: while 32 remain, the 64-byte load stays
  // inside the stream. The rest is left to the caller's generic path.
  for (; step < full_steps && pos + kLanes <= dec.word_count; ++step) {
    const __m512i e0 = _mm512_i32gather_epi32(_mm512_and_si512(x0, slot_mask), tab, 4);
    const __m512i e1 = _mm512_i32gather_epi32(_mm512_and_si512(x1, slot_mask), tab, 4);
    const __m512i f0 = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(e0, 12), bias_mask), one);
    const __m512i f1 = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(e1, 12), bias_mask), one);
    x0 = _mm512_add_epi32(_mm512_mullo_epi32(f0, _mm512_srl_epi32(x0, prob_shift)), _mm512_and_si512(e0, bias_mask));
    x1 = _mm512_add_epi32(_mm512_mullo_epi32(f1, _mm512_srl_epi32(x1, prob_shift)), _mm512_and_si512(e1, bias_mask));
    const __mmask16 m0 = _mm512_cmplt_epu32_mask(x0, low);
    const __mmask16 m1 = _mm512_cmplt_epu32_mask(x1, low);
    const uint32_t m = static_cast<uint32_t>(m0) | (static_cast<uint32_t>(m1) << 16);
    const __m512i w = _mm512_loadu_si512(dec.words + 2 * pos);
    const __m512i next = _mm512_maskz_expand_epi16(m, w);
    x0 = _mm512_mask_or_epi32(x0, m0, _mm512_slli_epi32(x0, 16),
                              _mm512_cvtepu16_epi32(_mm512_castsi512_si256(next)));
    x1 = _mm512_mask_or_epi32(x1, m1, _mm512_slli_epi32(x1, 16),
                              _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(next, 1)));
    pos += static_cast<uint64_t>(__builtin_popcount(m));

    // bf16 = sign (raw bit 7) << 15 | symbol << 7 | raw bits 0-6.
    const uint64_t t = step * kLanes;
    const __m512i sym = _mm512_maskz_permutex2var_epi8(0x5555555555555555ull, e0, sym_pick, e1);
    const __m512i r = unpack.step<kLossless>(raw, step);
    __m512i v = _mm512_ternarylogic_epi32(_mm512_slli_epi16(sym, 7), r, low7, 0xF8);  // a | (b & c)
    v = _mm512_ternarylogic_epi32(v, _mm512_slli_epi16(r, 8), sign, 0xF8);
    _mm512_storeu_si512(dst + 2 * t, v);

    if constexpr (!kHash) continue;
    // nzhash terms of the 16 output words.
    const __m512i z_even = _mm512_ternarylogic_epi64(v, low32, index_even, 0x6A);  // (a & b) ^ c
    const __m512i z_odd = _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(v, _MM_PERM_DDBB), low32, index_odd, 0x6A);
    sum_lo = _mm512_add_epi64(sum_lo, mix64x8_tail(z_even, c1, c2));
    sum_hi = _mm512_add_epi64(sum_hi, mix64x8_tail(z_odd, c1, c2));
    index_even = _mm512_add_epi64(index_even, index_step);
    index_odd = _mm512_add_epi64(index_odd, index_step);
  }
  _mm512_storeu_si512(dec.x, x0);
  _mm512_storeu_si512(dec.x + 16, x1);
  dec.pos = pos;
  if constexpr (kHash) *hash_sum = static_cast<uint64_t>(_mm512_reduce_add_epi64(_mm512_add_epi64(sum_lo, sum_hi)));
  return step * kLanes;
}

}  // namespace

NZ_TARGET_BF16_FUSED uint64_t rans_decode_bf16_avx512(RansDecoder& dec, const DecodeTable& table,
                                                      const uint8_t* raw, uint32_t kept_bits, uint8_t* dst,
                                                      uint64_t count, uint64_t first_word, uint64_t* hash_sum) {
  if (!table.has_packed || kept_bits > 7) return 0;
  const uint32_t raw_bits = 1 + kept_bits;
  if (raw_bits == 8) {
    return hash_sum ? decode_bf16_steps<true, true>(dec, table, raw, raw_bits, dst, count, first_word, hash_sum)
                    : decode_bf16_steps<true, false>(dec, table, raw, raw_bits, dst, count, first_word, hash_sum);
  }
  return hash_sum ? decode_bf16_steps<false, true>(dec, table, raw, raw_bits, dst, count, first_word, hash_sum)
                  : decode_bf16_steps<false, false>(dec, table, raw, raw_bits, dst, count, first_word, hash_sum);
}

}  // namespace nz::codec

#else

namespace nz::codec {
bool rans_bf16_fused_supported() { return false; }
uint64_t rans_decode_bf16_avx512(RansDecoder&, const DecodeTable&, const uint8_t*, uint32_t, uint8_t*, uint64_t,
                                 uint64_t, uint64_t* hash_sum) {
  if (hash_sum) *hash_sum = 0;
  return 0;
}
}  // namespace nz::codec

#endif
