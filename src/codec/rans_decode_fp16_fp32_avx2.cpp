// Fused AVX2 decoders for fp16 and fp32 rANS chunks, lossless or lossy (any
// K), the AVX2 counterpart of rans_decode_fp16_fp32_avx512.cpp (which is
// lossless only): one pass does the rANS step (rans_step_avx2.h), merges
// each symbol with its raw bits into the element in registers, stores it
// and (without block scaling) adds its nzhash terms (hash_avx2.h).
//
// Raw values: R = K + 1 bits each, so 8 elements (one vector of states) are
// exactly R bytes. Lane i needs the bytes around bit iR; a byte shuffle
// (which stays within 128-bit halves) picks them and a per-lane shift
// (vpsrlvd) aligns the field:
// * fp16 (R <= 11): lanes 0-7 all find their bytes in the group's first
//   16, loaded into both halves.
// * fp32 (R <= 24): the high half gets the 16 bytes from byte R/2 (rounded
//   down), where lane 4 starts. Lossless (R = 24) needs no shift: one
//   32-byte load from 4 bytes before the group puts bytes 0-11 in the low
//   half and 12-23 in the high one, and bytes 3i, 3i+1, 3i+2, 3i+2 in lane
//   i hold the mantissa in place and the sign (raw bit 23) in bit 31.
// The sign (raw bit K) then moves to the element's top bit, the kept
// mantissa bits to the top of the mantissa, and the exponent comes from the
// table entry (symbol in bits 12-19); fp16 does this after packing two
// groups to u16 lanes.
//
// The raw loads run a few bytes past a group's values; the loop stops
// before a step whose loads would pass the end of the chunk's payload
// (FusedJob::end), and the generic path decodes the rest.
#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "codec/hash_avx2.h"
#include "codec/rans_step_avx2.h"

namespace nz::codec {

namespace {

struct WideConsts {
  avx2::StepConsts step;
  avx2::HashConsts hash;
  uint32_t raw_bits;       // R
  uint32_t high_offset;    // fp32: where the high half's 16 bytes start in a group; fp16: 0 (both halves the same)
  __m256i raw_pick;        // byte shuffle of a group's bytes
  __m256i raw_shift;       // per-lane right shift (iR % 8)
  __m256i field;           // 2^R - 1 (fp32 lossless: sign and mantissa where the element has them)
  __m128i sign_shift;      // raw bit K to the element's top bit
  __m128i mantissa_shift;  // the kept bits to the top of the mantissa
  __m256i sign, mantissa, exponent;
  __m256i sign16_source, sign16_move;  // fp16 in u16 lanes: bit 10, and 33
  // Lossless fp16, 16 elements (22 bytes) at a time, element pairs in u32
  // lanes: the byte shuffle and shift that put the pair's 22 bits at bits
  // 0-21 of lane j, from a 32-byte load 5 bytes before the group.
  __m256i pair_pick, pair_shift, exponent16, not_exponent16, unpair16;

  NZ_TARGET_AVX2 WideConsts(const DecodeTable& table, nz_dtype dtype, uint32_t kept_bits) : step(table) {
    const DtypeLayout l = dtype_layout(dtype);
    const uint32_t r = 1 + kept_bits;
    raw_bits = r;
    alignas(32) uint8_t pick[32] = {};
    alignas(32) uint32_t shift[8] = {};
    const bool fp32_lossless = dtype == NZ_FP32 && kept_bits == l.mantissa_bits;
    high_offset = dtype == NZ_FP32 ? 4 * r / 8 : 0;
    for (uint32_t i = 0; i < 8; ++i) {
      if (fp32_lossless) {
        // The load starts 4 bytes early: the low half holds bytes -4..11, the high half 12..27.
        const uint32_t base = i < 4 ? 4 + 3 * i : 3 * (i - 4);
        for (uint32_t b = 0; b < 4; ++b) pick[4 * i + b] = static_cast<uint8_t>(base + (b < 3 ? b : 2));
        continue;
      }
      // Bytes from the lane's half's load; a field spans at most 4 bytes (7 + R <= 31 bits).
      const uint32_t first = i * r / 8 - (i < 4 ? 0 : high_offset);
      for (uint32_t b = 0; b < 4; ++b) pick[4 * i + b] = static_cast<uint8_t>(first + b);
      shift[i] = i * r % 8;
    }
    raw_pick = _mm256_load_si256(reinterpret_cast<const __m256i*>(pick));
    raw_shift = _mm256_load_si256(reinterpret_cast<const __m256i*>(shift));
    field = _mm256_set1_epi32(fp32_lossless ? static_cast<int>(0x807FFFFFu) : static_cast<int>((1u << r) - 1));
    sign_shift = _mm_cvtsi32_si128(static_cast<int>(8 * l.bytes - 1 - kept_bits));
    mantissa_shift = _mm_cvtsi32_si128(static_cast<int>(l.mantissa_bits - kept_bits));
    sign = _mm256_set1_epi32(static_cast<int>(1u << (8 * l.bytes - 1)));
    mantissa = _mm256_set1_epi32(static_cast<int>((1u << l.mantissa_bits) - 1));
    exponent = _mm256_set1_epi32(static_cast<int>(((1u << l.exponent_bits) - 1) << l.mantissa_bits));
    sign16_source = _mm256_set1_epi16(0x400);
    sign16_move = _mm256_set1_epi16(33);
    alignas(32) uint8_t ppick[32];
    alignas(32) uint32_t pshift[8];
    for (uint32_t j = 0; j < 8; ++j) {
      // Pair j starts at bit 22j; the low half holds bytes -5..10 of the
      // group, the high half 11..26. The pair spans at most 4 bytes (its
      // shift is at most 6), and none runs past its half's 16 bytes.
      const uint32_t first = 22 * j / 8;
      const uint32_t base = j < 4 ? first + 5 : first - 11;
      const uint32_t used = (22 * j % 8 + 22 + 7) / 8;
      for (uint32_t b = 0; b < 4; ++b) ppick[4 * j + b] = b < used ? static_cast<uint8_t>(base + b) : 0x80;
      pshift[j] = 22 * j % 8;
    }
    pair_pick = _mm256_load_si256(reinterpret_cast<const __m256i*>(ppick));
    pair_shift = _mm256_load_si256(reinterpret_cast<const __m256i*>(pshift));
    exponent16 = _mm256_set1_epi16(0x7C00);
    not_exponent16 = _mm256_set1_epi16(static_cast<short>(0x83FF));
    unpair16 = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  }
};

// The R-bit raw fields of the group of 8 elements at `g` (u32 lanes).
template <nz_dtype kDtype>
NZ_TARGET_AVX2 inline __m256i raw_fields(const WideConsts& k, const uint8_t* g) {
  const __m128i low = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g));
  __m256i bytes;
  if constexpr (kDtype == NZ_FP32) {
    bytes = _mm256_inserti128_si256(_mm256_castsi128_si256(low), _mm_loadu_si128(reinterpret_cast<const __m128i*>(g + k.high_offset)), 1);
  } else {
    bytes = _mm256_broadcastsi128_si256(low);
  }
  return _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi8(bytes, k.raw_pick), k.raw_shift), k.field);
}

// 8 fp32 elements (u32 lanes) of the group of raw values at `g`.
template <bool kLossless>
NZ_TARGET_AVX2 inline __m256i fp32_group(const WideConsts& k, const uint8_t* g, __m256i e) {
  const __m256i exponent = _mm256_and_si256(_mm256_slli_epi32(e, 11), k.exponent);
  if constexpr (kLossless) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g - 4));
    return _mm256_or_si256(_mm256_and_si256(_mm256_shuffle_epi8(bytes, k.raw_pick), k.field), exponent);
  }
  const __m256i r = raw_fields<NZ_FP32>(k, g);
  const __m256i sign = _mm256_and_si256(_mm256_sll_epi32(r, k.sign_shift), k.sign);
  const __m256i mantissa = _mm256_and_si256(_mm256_sll_epi32(r, k.mantissa_shift), k.mantissa);
  return _mm256_or_si256(_mm256_or_si256(sign, mantissa), exponent);
}

// 16 fp16 elements (u16 lanes) of the groups at `g0` and `g0 + R`, with
// the entries of their lanes. The fields are cut out in u32 lanes (an
// 11-bit field can span 3 bytes) and packed to u16 at once; there the kept
// mantissa bits move to the top of the mantissa (lossy), the sign from bit
// 10 to bit 15 (adding and removing it with one multiply: (r & 2^10) * 33 is
// 2^15 + 2^10 when the sign is set), and the exponent joins.
//
// Lossless (R = 11) works on element pairs instead: lane j of one 32-byte
// load, shuffled and shifted, holds elements 2j and 2j + 1 at bits 0-10
// and 11-21; shifts by 5 and 10 and a 16-bit blend give each u16 lane its
// element's sign at bit 15 and mantissa at bits 5-14 (t), and an
// arithmetic shift by 5 puts the mantissa at bits 0-9 with copies of the
// sign at 10-15: no packing, no mask. The symbols go to u16 lanes with
// ones around them (bits 0-9 and 15), so one AND with the shifted field
// (its bits 10-14 set to one) gives sign, exponent and mantissa. 14
// vector instructions per 16 elements (15 before, with a multiply for the
// sign). The load starts 5 bytes before the group (inside the chunk
// payload: the initial states precede the raw values).
template <bool kLossless>
NZ_TARGET_AVX2 inline __m256i fp16_half(const WideConsts& k, const uint8_t* g0, __m256i e_lo, __m256i e_hi) {
  if constexpr (kLossless) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g0 - 5));
    const __m256i v = _mm256_srlv_epi32(_mm256_shuffle_epi8(bytes, k.pair_pick), k.pair_shift);
    // t: sign at bit 15, mantissa at bits 5-14 (bits 0-4 of odd lanes hold
    // garbage, which the shift drops). a: the mantissa at bits 0-9, ones at
    // 10-14 and the sign at 15.
    const __m256i t = _mm256_blend_epi16(_mm256_slli_epi32(v, 5), _mm256_slli_epi32(v, 10), 0xAA);
    const __m256i a = _mm256_or_si256(_mm256_srai_epi16(t, 5), k.exponent16);
    // s: the symbols at bits 10-14 (they are < 32: the fp16 alphabet), ones
    // at 0-9 and 15. The blend takes even u16 lanes from e_lo (elements 0-3
    // | 4-7) and odd ones from e_hi (8-11 | 12-15), interleaved; the byte
    // shuffle sorts each half to [0-3 8-11 | 4-7 12-15] and the permute
    // swaps the middle quarters.
    const __m256i pairs = _mm256_blend_epi16(_mm256_srli_epi32(e_lo, 2), _mm256_slli_epi32(e_hi, 14), 0xAA);
    const __m256i s = _mm256_permute4x64_epi64(
        _mm256_shuffle_epi8(_mm256_or_si256(pairs, k.not_exponent16), k.unpair16), 0xD8);
    return _mm256_and_si256(s, a);
  }
  // packus works within 128-bit halves: lanes come out as 0-3, 8-11, 4-7, 12-15.
  __m256i r = _mm256_permute4x64_epi64(
      _mm256_packus_epi32(raw_fields<NZ_FP16>(k, g0), raw_fields<NZ_FP16>(k, g0 + k.raw_bits)), 0xD8);
  if constexpr (!kLossless) r = _mm256_sll_epi16(r, k.mantissa_shift);
  r = _mm256_xor_si256(r, _mm256_mullo_epi16(_mm256_and_si256(r, k.sign16_source), k.sign16_move));
  return _mm256_or_si256(r, avx2::symbols_u16<10>(e_lo, e_hi));
}

// Steps [0, result) whose raw loads stay inside the payload: a step's last
// group starts 3R bytes in, and its loads reach `reach` bytes past that.
template <nz_dtype kDtype, bool kLossless>
uint64_t raw_safe_steps(const WideConsts& k, const FusedJob& job) {
  const uint64_t r = k.raw_bits;
  const uint64_t last_end = 3 * r + (kDtype == NZ_FP32 ? (kLossless ? 28 : k.high_offset + 16) : 16);
  const uint64_t avail = static_cast<uint64_t>(job.end - job.raw);
  return avail < last_end ? 0 : (avail - last_end) / (4 * r) + 1;
}

// Decodes whole steps; hashes them when kHash (no block scaling). Out of
// line: inlined where `k` is built, GCC rebuilds its constants inside the
// loop with broadcasts instead of loading them.
template <nz_dtype kDtype, bool kLossless, bool kHash>
NZ_TARGET_AVX2 __attribute__((noinline)) void run(const WideConsts& k, FusedJob& job) {
  avx2::StreamTail tail;
  avx2::Stream s(*job.dec, tail);
  avx2::HashIndex h(0);
  const uint64_t full_steps = job.count / kLanes;
  const uint64_t safe = raw_safe_steps<kDtype, kLossless>(k, job);
  const uint64_t end = full_steps < safe ? full_steps : safe;
  constexpr uint64_t kBytes = kDtype == NZ_FP32 ? 4 : 2;
  const uint64_t step_raw = 4 * k.raw_bits;
  uint64_t step = 0;
  for (; step < end && s.can_step(); ++step) {
    __m256i e[4];
    s.step(k.step, e);
    uint8_t* out = job.dst + kBytes * kLanes * step;
    const uint8_t* raw = job.raw + step_raw * step;
    if constexpr (kDtype == NZ_FP32) {
      for (int q = 0; q < 4; ++q) {
        const __m256i v = fp32_group<kLossless>(k, raw + k.raw_bits * q, e[q]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * q), v);
        if constexpr (kHash) avx2::hash_words(k.hash, h, v);
      }
    } else {
      for (int half = 0; half < 2; ++half) {
        const __m256i v = fp16_half<kLossless>(k, raw + k.raw_bits * 2 * half, e[2 * half], e[2 * half + 1]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * half), v);
        if constexpr (kHash) avx2::hash_words(k.hash, h, v);
      }
    }
  }
  s.save(*job.dec);
  job.corrupt = s.overrun();
  job.done = step * kLanes;
  job.final_done = kHash ? job.done : 0;
  job.hash_sum = kHash ? h.total() : 0;
}

template <nz_dtype kDtype>
NZ_TARGET_AVX2 void run_dtype(const WideConsts& k, const FusedParams& params, FusedJob& job) {
  if (params.kept_bits == dtype_layout(kDtype).mantissa_bits) {
    run<kDtype, true, true>(k, job);
  } else if (params.block_log2 == 0) {
    run<kDtype, false, true>(k, job);
  } else {
    run<kDtype, false, false>(k, job);  // the caller scales and hashes
  }
}

}  // namespace

NZ_TARGET_AVX2 void rans_decode_wide_avx2(const DecodeTable& table, nz_dtype dtype, const FusedParams& params,
                                          FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
  if (!table.has_avx2 || (dtype != NZ_FP16 && dtype != NZ_FP32) ||
      params.kept_bits > dtype_layout(dtype).mantissa_bits) {
    return;
  }
  const WideConsts k(table, dtype, params.kept_bits);
  if (dtype == NZ_FP32) {
    run_dtype<NZ_FP32>(k, params, job);
  } else {
    run_dtype<NZ_FP16>(k, params, job);
  }
}

}  // namespace nz::codec

#else

namespace nz::codec {
void rans_decode_wide_avx2(const DecodeTable&, nz_dtype, const FusedParams&, FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
}
}  // namespace nz::codec

#endif
