// Fused AVX2 decoders for lossless fp16 and fp32 rANS chunks, the AVX2
// counterpart of rans_decode_fp16_fp32_avx512.cpp: one pass does the rANS
// step (rans_step_avx2.h), merges each symbol with its raw bits into the
// final element in registers, stores it and adds its nzhash terms
// (hash_avx2.h).
//
// Raw values, per vector of 8 states (8 elements):
// * fp32: R = 24 bits, 3 bytes per element, 24 bytes. One 32-byte load from
//   4 bytes before them puts bytes 0-11 in the low 128-bit half and 12-23
//   in the high one, so a byte shuffle (which stays within halves) can put
//   bytes 3i, 3i+1, 3i+2, 3i+2 in lane i: the mantissa is in place and the
//   sign (raw bit 23) lands in bit 31; the exponent comes from the table
//   entry (symbol in bits 12-19, shifted left by 11).
// * fp16: R = 11 bits, 11 bytes. Both halves get the same 16 bytes; lane i
//   takes the 3 bytes around bit 11i and a per-lane shift (vpsrlvd) aligns
//   its field. The sign (raw bit 10) moves to bit 15, the symbol to bits
//   10-14, and two vectors pack into 16 fp16 elements.
#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "codec/hash_avx2.h"
#include "codec/rans_step_avx2.h"

namespace nz::codec {

namespace {

constexpr uint32_t kFp16RawStepBytes = 44;  // 32 x 11 bits
constexpr uint32_t kFp32RawStepBytes = 96;  // 32 x 24 bits

struct WideConsts {
  avx2::StepConsts step;
  avx2::HashConsts hash;
  __m256i raw_pick;    // byte shuffle of a vector's raw bytes
  __m256i raw_shift;   // fp16: per-lane right shift
  __m256i keep_raw;    // fp32: sign and mantissa; fp16: the 11-bit field
  __m256i exponent;    // fp32: bits 23-30; fp16: bits 10-14
  __m256i sign, mantissa;  // fp16: bit 15, bits 0-9

  NZ_TARGET_AVX2 WideConsts(const DecodeTable& table, nz_dtype dtype) : step(table) {
    alignas(32) uint8_t pick[32] = {};
    alignas(32) uint32_t shift[8] = {};
    if (dtype == NZ_FP32) {
      // The load starts 4 bytes early: the low half holds bytes -4..11, the high half 12..27.
      for (int i = 0; i < 8; ++i) {
        const int base = i < 4 ? 4 + 3 * i : 3 * (i - 4);
        for (int b = 0; b < 4; ++b) pick[4 * i + b] = static_cast<uint8_t>(base + (b < 3 ? b : 2));
      }
      keep_raw = _mm256_set1_epi32(static_cast<int>(0x807FFFFFu));
    } else {
      for (int i = 0; i < 8; ++i) {
        const int first = 11 * i / 8;
        for (int b = 0; b < 4; ++b) pick[4 * i + b] = b < 3 ? static_cast<uint8_t>(first + b) : 0x80;  // 0x80: zero
        shift[i] = static_cast<uint32_t>(11 * i % 8);
      }
      keep_raw = _mm256_set1_epi32(0x7FF);
    }
    raw_pick = _mm256_load_si256(reinterpret_cast<const __m256i*>(pick));
    raw_shift = _mm256_load_si256(reinterpret_cast<const __m256i*>(shift));
    exponent = _mm256_set1_epi32(dtype == NZ_FP32 ? 0x7F800000 : 0x7C00);
    sign = _mm256_set1_epi32(0x8000);
    mantissa = _mm256_set1_epi32(0x3FF);
  }
};

// 8 fp32 elements: sign and mantissa from the raw bytes, exponent from the entry.
NZ_TARGET_AVX2 inline __m256i fp32_quarter(const WideConsts& k, const uint8_t* raw, __m256i e) {
  const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw - 4));
  const __m256i r = _mm256_and_si256(_mm256_shuffle_epi8(bytes, k.raw_pick), k.keep_raw);
  return _mm256_or_si256(r, _mm256_and_si256(_mm256_slli_epi32(e, 11), k.exponent));
}

// 8 fp16 elements as u32 lanes: sign (raw bit 10) << 15 | symbol << 10 | raw bits 0-9.
NZ_TARGET_AVX2 inline __m256i fp16_quarter(const WideConsts& k, const uint8_t* raw, __m256i e) {
  const __m256i bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(raw)));
  const __m256i r = _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi8(bytes, k.raw_pick), k.raw_shift), k.keep_raw);
  const __m256i sign = _mm256_and_si256(_mm256_slli_epi32(r, 5), k.sign);
  const __m256i mantissa = _mm256_and_si256(r, k.mantissa);
  return _mm256_or_si256(_mm256_or_si256(sign, mantissa), _mm256_and_si256(_mm256_srli_epi32(e, 2), k.exponent));
}

// Out of line: inlined where `k` is built, GCC rebuilds its constants
// inside the loop with broadcasts instead of loading them.
template <nz_dtype kDtype>
NZ_TARGET_AVX2 __attribute__((noinline)) void run(const WideConsts& k, FusedJob& job, uint64_t& steps) {
  avx2::StreamTail tail;
  avx2::Stream s(*job.dec, tail);
  constexpr uint64_t kBytes = kDtype == NZ_FP32 ? 4 : 2;
  avx2::HashIndex h(steps * kLanes * kBytes / 4);
  const uint64_t full_steps = job.count / kLanes;
  uint64_t step = steps;
  // The loads read up to 5 bytes past a step's raw values (fp32 also 4
  // before them, inside the chunk's states): inside the payload, since the
  // word stream that follows the raw section has at least 64 bytes left.
  for (; step < full_steps && s.can_step(); ++step) {
    __m256i e[4];
    s.step(k.step, e);
    uint8_t* out = job.dst + kBytes * kLanes * step;
    if constexpr (kDtype == NZ_FP32) {
      const uint8_t* raw = job.raw + kFp32RawStepBytes * step;
      for (int q = 0; q < 4; ++q) {
        const __m256i v = fp32_quarter(k, raw + 24 * q, e[q]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * q), v);
        avx2::hash_words(k.hash, h, v);
      }
    } else {
      const uint8_t* raw = job.raw + kFp16RawStepBytes * step;
      for (int half = 0; half < 2; ++half) {
        const __m256i lo = fp16_quarter(k, raw + 22 * half, e[2 * half]);
        const __m256i hi = fp16_quarter(k, raw + 22 * half + 11, e[2 * half + 1]);
        // packus works within 128-bit halves: lanes 0-3, 8-11, 4-7, 12-15.
        const __m256i v = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * half), v);
        avx2::hash_words(k.hash, h, v);
      }
    }
  }
  steps = step;
  s.save(*job.dec);
  job.corrupt = s.overrun();
  job.hash_sum += h.total();
}

}  // namespace

NZ_TARGET_AVX2 void rans_decode_wide_avx2(const DecodeTable& table, nz_dtype dtype, FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
  if (!table.has_avx2 || (dtype != NZ_FP16 && dtype != NZ_FP32)) return;
  const WideConsts k(table, dtype);
  uint64_t steps = 0;
  if (dtype == NZ_FP32) {
    run<NZ_FP32>(k, job, steps);
  } else {
    run<NZ_FP16>(k, job, steps);
  }
  job.done = job.final_done = steps * kLanes;
}

}  // namespace nz::codec

#else

namespace nz::codec {
void rans_decode_wide_avx2(const DecodeTable&, nz_dtype, FusedJob& job) { job.done = job.final_done = job.hash_sum = 0; }
}  // namespace nz::codec

#endif
