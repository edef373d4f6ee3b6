// Fused AVX2 decoder for bf16 rANS chunks, the AVX2 counterpart of
// rans_decode_bf16_avx512.cpp: rANS symbols (rans_step_avx2.h), the merge
// with the raw values, the block scaling (blocks of 32 elements or more)
// and the nzhash terms (hash_avx2.h) in one pass, so the output is written
// once and hashed while in registers.
//
// Why fused: a step is a latency chain (gather -> multiply -> compare ->
// permute) on four vectors of states. The merge and hash of the step do
// not depend on that chain's next link and fill the execution ports it
// leaves idle, instead of costing two more passes over the chunk.
#include <algorithm>

#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "codec/hash_avx2.h"
#include "codec/lossy.h"
#include "codec/rans_step_avx2.h"

namespace nz::codec {

namespace {

// Raw values of 16 elements (half a step) as u16 lanes, aligned as the
// lossless byte: sign in bit 7 and the kept mantissa bits below it; bits
// 8-15 are copies of the sign (the merge wants the sign in bit 15), the
// bits below the field are garbage (the merge masks them). Lossless
// (R = 8): 16 bytes, sign-extended. Lossy (R = K + 1 <= 7): the 2R
// bytes of the half; lane i takes the two bytes around its bit offset iR
// (R <= 7, so they hold the whole field), and a multiply by a per-lane
// power of two moves its field to the top of the lane (AVX2 has no
// per-lane 16-bit shift), from where one arithmetic shift aligns it.
struct RawUnpacker {
  uint32_t raw_bits;
  __m256i pick;      // lossy: bytes 2i, 2i+1 of lane i (within its 128-bit half)
  __m256i to_top;    // lossy: 2^(16 - iR % 8 - R)

  NZ_TARGET_AVX2 explicit RawUnpacker(uint32_t r) : raw_bits(r) {
    alignas(32) uint8_t p[32];
    alignas(32) uint16_t m[16];
    for (uint32_t i = 0; i < 16; ++i) {
      // Lanes 8-15 sit in the upper 128-bit half, which sees the same 16
      // bytes (broadcast), so they index the half's bytes directly too.
      p[2 * i] = static_cast<uint8_t>(i * r / 8);
      p[2 * i + 1] = static_cast<uint8_t>(i * r / 8 + 1);
      m[i] = static_cast<uint16_t>(1u << (16 - i * r % 8 - r));
    }
    pick = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
    to_top = _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
  }

  // Half `h` (0 or 1) of step `step_index`. Lossy reads 16 bytes from the
  // half's first: up to 16 - 2R bytes past them (raw_safe_steps keeps that
  // inside the payload).
  template <bool kLossless>
  NZ_TARGET_AVX2 __m256i half(const uint8_t* raw, uint64_t step_index, int h) const {
    if constexpr (kLossless) {
      return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(raw + 32 * step_index + 16 * h)));
    } else {
      const uint8_t* src = raw + 4 * raw_bits * step_index + 2 * raw_bits * h;
      const __m256i bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
      const __m256i top = _mm256_mullo_epi16(_mm256_shuffle_epi8(bytes, pick), to_top);
      return _mm256_srai_epi16(top, 8);
    }
  }
};

struct Consts {
  avx2::StepConsts step;
  avx2::HashConsts hash;
  RawUnpacker unpack;
  __m256i keep;  // a sign copy (bit 15) and the kept mantissa bits (bits 7 - K .. 6)
  // Block scaling: the exponent field, the magnitude bits (u16 lanes); 1
  // and 0x7FFF (u32 lanes) for the rounding.
  __m256i exponent16, magnitude16, high16, one32, half32;

  NZ_TARGET_AVX2 Consts(const DecodeTable& table, uint32_t raw_bits)
      : step(table),
        unpack(raw_bits),
        keep(_mm256_set1_epi16(static_cast<short>(0x8000 | ((0xFFu << (8 - raw_bits)) & 0x7F)))),
        exponent16(_mm256_set1_epi16(0x7F80)),
        magnitude16(_mm256_set1_epi16(0x7FFF)),
        high16(_mm256_set1_epi32(static_cast<int>(0xFFFF0000u))),
        one32(_mm256_set1_epi32(1)),
        half32(_mm256_set1_epi32(0x7FFF)) {}
};

// bf16 = sign << 15 | symbol << 7 | the kept mantissa bits (dropped bits zero).
NZ_TARGET_AVX2 inline __m256i merge(const Consts& k, __m256i shifted_symbols, __m256i raw) {
  return _mm256_or_si256(shifted_symbols, _mm256_and_si256(raw, k.keep));
}

// Block scaling of 16 merged elements (docs/FORMAT.md 6.2): y = to_bf16(d * S)
// for the finite ones (round_shift of the binary32 bits by 16, ties to
// even), the others unchanged; `any` collects the finite elements'
// magnitudes, for the check that a block with a non-zero code has a
// non-zero element. The same arithmetic as dequantize_bf16_avx2.
NZ_TARGET_AVX2 inline __m256i scale16(const Consts& k, __m256i d, __m256 s, __m256i& any) {
  const __m256i nonfinite = _mm256_cmpeq_epi16(_mm256_and_si256(d, k.exponent16), k.exponent16);
  any = _mm256_or_si256(any, _mm256_andnot_si256(nonfinite, _mm256_and_si256(d, k.magnitude16)));
  // The even elements (low halves of the u32 lanes) and the odd ones (high
  // halves) as binary32, scaled, rounded back in place.
  const __m256i even = _mm256_castps_si256(_mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(d, 16)), s));
  const __m256i odd = _mm256_castps_si256(_mm256_mul_ps(_mm256_castsi256_ps(_mm256_and_si256(d, k.high16)), s));
  const __m256i even_r = _mm256_srli_epi32(
      _mm256_add_epi32(_mm256_add_epi32(even, k.half32), _mm256_and_si256(_mm256_srli_epi32(even, 16), k.one32)), 16);
  const __m256i odd_r =
      _mm256_add_epi32(_mm256_add_epi32(odd, k.half32), _mm256_and_si256(_mm256_srli_epi32(odd, 16), k.one32));
  const __m256i y = _mm256_blend_epi16(even_r, odd_r, 0xAA);
  return _mm256_blendv_epi8(y, d, nonfinite);
}

// One step of a chunk: decode, merge, scale when kScale (by `scale`,
// collecting `any`), store, and hash when kHash.
template <bool kLossless, bool kScale, bool kHash>
NZ_TARGET_AVX2 inline void decode_step(const Consts& k, avx2::Stream& s, const FusedJob& job, uint64_t step,
                                       __m256 scale, __m256i& any, avx2::HashIndex& h) {
  __m256i e[4];
  s.step(k.step, e);
  for (int half = 0; half < 2; ++half) {
    __m256i v = merge(k, avx2::symbols_u16<7>(e[2 * half], e[2 * half + 1]), k.unpack.half<kLossless>(job.raw, step, half));
    if constexpr (kScale) v = scale16(k, v, scale, any);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(job.dst + 64 * step + 32 * half), v);
    if constexpr (kHash) avx2::hash_words(k.hash, h, v);
  }
}

// Decodes steps [step, end) merging only (kHash: they are final and hashed).
template <bool kLossless, bool kHash>
NZ_TARGET_AVX2 inline uint64_t run_steps(const Consts& k, avx2::Stream& s, const FusedJob& job, uint64_t step,
                                         uint64_t end, avx2::HashIndex& h) {
  __m256i unused = _mm256_setzero_si256();
  for (; step < end && s.can_step(); ++step) {
    decode_step<kLossless, false, kHash>(k, s, job, step, _mm256_setzero_ps(), unused, h);
  }
  return step;
}

// Out of line, each loop: inlined where `k` is built, GCC rebuilds its
// constants inside the loop with broadcasts instead of loading them.

// Whole steps whose raw loads stay inside the payload (FusedJob::end): the
// lossless ones read exactly a step's 32 bytes, the lossy ones 16 bytes from
// each half's first (2R bytes in, for the second half).
template <bool kLossless>
uint64_t raw_safe_steps(const Consts& k, const FusedJob& job) {
  const uint64_t full_steps = job.count / kLanes;
  if constexpr (kLossless) return full_steps;
  const uint64_t r = k.unpack.raw_bits;
  const uint64_t avail = static_cast<uint64_t>(job.end - job.raw);
  const uint64_t safe = avail < 2 * r + 16 ? 0 : (avail - 2 * r - 16) / (4 * r) + 1;
  return safe < full_steps ? safe : full_steps;
}

// Without blocks: every whole step of the chunk, final and hashed when kHash.
template <bool kLossless, bool kHash>
NZ_TARGET_AVX2 __attribute__((noinline)) void run(const Consts& k, FusedJob& job) {
  avx2::StreamTail tail;
  avx2::Stream s(*job.dec, tail);
  avx2::HashIndex h(0);
  const uint64_t steps = run_steps<kLossless, kHash>(k, s, job, 0, raw_safe_steps<kLossless>(k, job), h);
  s.save(*job.dec);
  job.corrupt = s.overrun();
  job.done = steps * kLanes;
  job.final_done = kHash ? job.done : 0;
  job.hash_sum = kHash ? h.total() : 0;
}

// Lossy with blocks of 2^block_log2 >= 32 elements (whole steps): the steps
// of the complete blocks are scaled and hashed block by block (a block's
// scale code is checked as the reference does); those of a last, partial
// block (or past the raw loads' limit) are merged only, for the caller to finish.
NZ_TARGET_AVX2 __attribute__((noinline)) void run_blocks(const Consts& k, uint32_t block_log2, FusedJob& job) {
  avx2::StreamTail tail;
  avx2::Stream s(*job.dec, tail);
  avx2::HashIndex h(0);
  const uint64_t end = raw_safe_steps<false>(k, job);
  const uint64_t steps_per_block = uint64_t{1} << (block_log2 - 5);
  const uint64_t complete = std::min(job.count >> block_log2, end / steps_per_block);
  const uint64_t scaled_steps = complete * steps_per_block;
  uint64_t step = 0;
  for (uint64_t b = 0; step < scaled_steps; ++b) {
    const uint32_t code = job.scales[b];
    if (code & 1) break;  // bf16 block maxima have 7 fraction bits, so their codes are even
    const __m256 scale = _mm256_set1_ps(scale_value(code));
    __m256i any = _mm256_setzero_si256();
    const uint64_t block_end = step + steps_per_block;
    if (code == 0) {
      step = run_steps<false, true>(k, s, job, step, block_end, h);
    } else {
      for (; step < block_end && s.can_step(); ++step) decode_step<false, true, true>(k, s, job, step, scale, any, h);
    }
    if (step < block_end || (code != 0 && _mm256_testz_si256(any, any))) break;
  }
  // An invalid code or a stream that ran out (only a corrupt one does) stops early.
  job.corrupt = step < scaled_steps;
  job.final_done = step * kLanes;
  job.hash_sum = h.total();
  if (!job.corrupt) step = run_steps<false, false>(k, s, job, step, end, h);
  s.save(*job.dec);
  job.corrupt = job.corrupt || s.overrun();
  job.done = step * kLanes;
}

}  // namespace

NZ_TARGET_AVX2 void rans_decode_bf16_avx2(const DecodeTable& table, const FusedParams& params, FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
  if (!table.has_avx2 || params.kept_bits > 7) return;
  const Consts k(table, 1 + params.kept_bits);
  // Blocks of 32 elements or more hold whole steps: they are scaled and
  // hashed here. Smaller ones are only merged; the caller scales and hashes
  // the chunk. Without blocks the merged elements are the output.
  if (params.kept_bits == 7) {
    run<true, true>(k, job);
  } else if (params.block_log2 == 0) {
    run<false, true>(k, job);
  } else if (params.block_log2 >= 5 && job.scales != nullptr) {
    run_blocks(k, params.block_log2, job);
  } else {
    run<false, false>(k, job);
  }
}

}  // namespace nz::codec

#else

namespace nz::codec {
void rans_decode_bf16_avx2(const DecodeTable&, const FusedParams&, FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
}
}  // namespace nz::codec

#endif
