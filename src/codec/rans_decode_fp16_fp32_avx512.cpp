// Fused AVX-512 decoders for lossless fp16 and fp32 rANS chunks, the
// counterpart of the bf16 one (rans_decode_bf16_avx512.cpp): one pass does
// the rANS step on 2 x 16 lanes, merges each symbol with its raw bits into
// the final element in registers, stores it and adds its nzhash terms.
//
// Raw values per step of 32 elements:
// * fp32: R = 24 bits, exactly 3 bytes per element (96 bytes a step). One
//   byte permute per 16 elements puts bytes 3i, 3i+1, 3i+2, 3i+2 in lane i:
//   the mantissa is in place and the sign (raw bit 23) lands in bit 31; the
//   exponent bits 23-30 then come from the table entry (symbol in bits
//   24-31, shifted right by one) in a single bit-select.
// * fp16: R = 11 bits, 44 bytes a step. A byte permute gives each 64-bit
//   lane the 6 bytes holding its 4 values, one multishift (VBMI) cuts the
//   four 16-bit windows; the sign (raw bit 10) moves to bit 15, the symbol
//   to bits 10-14.
#include <utility>

#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "codec/rans_step_avx512.h"

namespace nz::codec {

namespace {

constexpr uint32_t kFp16RawStepBytes = 44;  // 32 x 11 bits
constexpr uint32_t kFp32RawStepBytes = 96;  // 32 x 24 bits

struct WideConsts : fused::StepConsts {
  __m512i index_step;  // added to the word index terms per step
  __m512i half_step;   // fp32: from the first 16 words of a step to the next 16
  __m512i raw_pick0, raw_pick1;  // byte permutes of the raw section
  __m512i raw_shift;             // fp16: multishift control
  __m512i keep_raw;              // fp32: bits taken from the raw value; fp16: low 10 bits
  __m512i sym_pick, sign16;      // fp16

  NZ_TARGET_AVX512_FUSED WideConsts(const DecodeTable& table, nz_dtype dtype) : fused::StepConsts(table) {
    // The index term of word j is (j << 32) ^ (j >> 1); for even j, adding
    // an even d words adds (d << 32) + d / 2 (j >> 1 < 2^31: no carry crosses).
    const long long words_per_step = dtype == NZ_FP32 ? 32 : 16;
    index_step = _mm512_set1_epi64((words_per_step << 32) + words_per_step / 2);
    half_step = _mm512_set1_epi64((16ll << 32) + 8);
    sign16 = _mm512_set1_epi16(static_cast<short>(0x8000));
    alignas(64) uint8_t pick0[64] = {}, pick1[64] = {}, shift[64] = {}, sym[64] = {};
    if (dtype == NZ_FP32) {
      // Lanes 0-15 from a load at the step's byte 0, lanes 16-31 from one at
      // byte 32 (their bytes 48-95 are bytes 16-63 of it): both stay inside
      // the step's 96 bytes.
      for (int i = 0; i < 16; ++i) {
        for (int b = 0; b < 4; ++b) {
          pick0[4 * i + b] = static_cast<uint8_t>(3 * i + (b < 3 ? b : 2));
          pick1[4 * i + b] = static_cast<uint8_t>(16 + 3 * i + (b < 3 ? b : 2));
        }
      }
      keep_raw = _mm512_set1_epi32(static_cast<int>(0x807FFFFFu));
    } else {
      // 64-bit lane q holds values 4q..4q+3: bits [44q, 44q + 44) of the
      // step, from byte 44q / 8 with (44q) % 8 bits to skip.
      for (int q = 0; q < 8; ++q) {
        const int first_byte = 44 * q / 8, skip = 44 * q % 8;
        for (int b = 0; b < 8; ++b) pick0[8 * q + b] = static_cast<uint8_t>(first_byte + b);
        for (int k = 0; k < 4; ++k) {
          shift[8 * q + 2 * k] = static_cast<uint8_t>(skip + 11 * k);
          shift[8 * q + 2 * k + 1] = static_cast<uint8_t>(skip + 11 * k + 8);
        }
      }
      // Byte 2i of the merged vector is lane i's symbol (byte 3 of its table
      // entry, in e0 for lanes 0-15 and e1 for 16-31); odd bytes are zeroed.
      for (int i = 0; i < 32; ++i) sym[2 * i] = static_cast<uint8_t>(i < 16 ? 4 * i + 3 : 64 + 4 * (i - 16) + 3);
      keep_raw = _mm512_set1_epi16(0x3FF);
    }
    raw_pick0 = _mm512_load_si512(pick0);
    raw_pick1 = _mm512_load_si512(pick1);
    raw_shift = _mm512_load_si512(shift);
    sym_pick = _mm512_load_si512(sym);
  }
};

// One chunk's stream in registers. Its index terms are those of the even
// words of the next 16 output words (fp32 hashes two such groups a step).
struct WideStream : fused::StreamState {
  // A plain constructor, not an inherited one: GCC does not early-inline the
  // inherited-constructor thunk, which changes its inlining of the run loops.
  NZ_TARGET_AVX512_FUSED WideStream(const RansDecoder& dec, const uint8_t* raw_section, uint8_t* out,
                                    uint64_t first_word)
      : fused::StreamState(dec, raw_section, out, first_word) {}

  // nzhash terms of the 16 u32 words in v, the first with the index term `index`.
  NZ_TARGET_AVX512_FUSED static inline __m512i hash_terms(const WideConsts& k, __m512i v, __m512i index) {
    const __m512i z_even = _mm512_ternarylogic_epi64(v, k.low32, index, 0x6A);  // (a & b) ^ c
    const __m512i z_odd = _mm512_xor_si512(_mm512_srli_epi64(v, 32), _mm512_add_epi64(index, k.odd_word));
    return _mm512_add_epi64(fused::mix64x8_tail(z_even, k.c1, k.c2), fused::mix64x8_tail(z_odd, k.c1, k.c2));
  }

  NZ_TARGET_AVX512_FUSED inline void step_fp32(const WideConsts& k, uint64_t step_index) {
    __m512i e0, e1;
    rans_step(k, e0, e1);
    const uint8_t* r = raw + kFp32RawStepBytes * step_index;
    const __m512i r0 = _mm512_permutexvar_epi8(k.raw_pick0, _mm512_loadu_si512(r));
    const __m512i r1 = _mm512_permutexvar_epi8(k.raw_pick1, _mm512_loadu_si512(r + 32));
    // Bit-select: sign and mantissa from the raw value, exponent from the entry.
    const __m512i v0 = _mm512_ternarylogic_epi32(r0, _mm512_srli_epi32(e0, 1), k.keep_raw, 0xE4);
    const __m512i v1 = _mm512_ternarylogic_epi32(r1, _mm512_srli_epi32(e1, 1), k.keep_raw, 0xE4);
    uint8_t* out = dst + 4 * kLanes * step_index;
    _mm512_storeu_si512(out, v0);
    _mm512_storeu_si512(out + 64, v1);
    sum = _mm512_add_epi64(sum, _mm512_add_epi64(hash_terms(k, v0, index_even),
                                                 hash_terms(k, v1, _mm512_add_epi64(index_even, k.half_step))));
    index_even = _mm512_add_epi64(index_even, k.index_step);
  }

  NZ_TARGET_AVX512_FUSED inline void step_fp16(const WideConsts& k, uint64_t step_index) {
    __m512i e0, e1;
    rans_step(k, e0, e1);
    // 44 bytes: the masked load never reads past the step's raw values.
    const __mmask64 bytes = (uint64_t{1} << kFp16RawStepBytes) - 1;
    const __m512i packed = _mm512_maskz_loadu_epi8(bytes, raw + kFp16RawStepBytes * step_index);
    const __m512i r = _mm512_multishift_epi64_epi8(k.raw_shift, _mm512_permutexvar_epi8(k.raw_pick0, packed));
    const __m512i sym = _mm512_maskz_permutex2var_epi8(0x5555555555555555ull, e0, k.sym_pick, e1);
    // fp16 = sign (raw bit 10) << 15 | symbol << 10 | raw bits 0-9.
    __m512i v = _mm512_ternarylogic_epi32(_mm512_slli_epi16(sym, 10), r, k.keep_raw, 0xF8);  // a | (b & c)
    v = _mm512_ternarylogic_epi32(v, _mm512_slli_epi16(r, 5), k.sign16, 0xF8);
    _mm512_storeu_si512(dst + 2 * kLanes * step_index, v);
    sum = _mm512_add_epi64(sum, hash_terms(k, v, index_even));
    index_even = _mm512_add_epi64(index_even, k.index_step);
  }

  template <nz_dtype kDtype>
  NZ_TARGET_AVX512_FUSED inline void step(const WideConsts& k, uint64_t step_index) {
    if constexpr (kDtype == NZ_FP32) {
      step_fp32(k, step_index);
    } else {
      step_fp16(k, step_index);
    }
  }
};

uint64_t words_per_step(nz_dtype dtype) { return dtype == NZ_FP32 ? 32 : 16; }

// Continues one chunk alone from `steps` whole steps done. Kept out of line:
// inlined into its callers, GCC 12 folds the constants of `k` into the loop
// and rebuilds them there with broadcasts instead of loading them.
template <nz_dtype kDtype>
NZ_TARGET_AVX512_FUSED __attribute__((noinline)) void run_single(const WideConsts& k, FusedJob& job,
                                                                 uint64_t& steps) {
  const uint64_t full_steps = job.count / kLanes;
  WideStream s(*job.dec, job.raw, job.dst, steps * words_per_step(kDtype));
  uint64_t step = steps;
  for (; step < full_steps && s.can_step(); ++step) s.step<kDtype>(k, step);
  steps = step;
  s.save(*job.dec);
  job.hash_sum += s.hash_sum();
}

// Two chunks interleaved: two independent latency chains fill the ports
// that one leaves idle.
template <nz_dtype kDtype>
NZ_TARGET_AVX512_FUSED void run_pair(const WideConsts& k, FusedJob& a, FusedJob& b, uint64_t& steps) {
  WideStream sa(*a.dec, a.raw, a.dst, 0);
  WideStream sb(*b.dec, b.raw, b.dst, 0);
  const uint64_t full_a = a.count / kLanes, full_b = b.count / kLanes;
  const uint64_t full_steps = full_a < full_b ? full_a : full_b;
  uint64_t step = 0;
  for (; step < full_steps && sa.can_step() && sb.can_step(); ++step) {
    sa.step<kDtype>(k, step);
    sb.step<kDtype>(k, step);
  }
  sa.save(*a.dec);
  sb.save(*b.dec);
  a.hash_sum = sa.hash_sum();
  b.hash_sum = sb.hash_sum();
  steps = step;
}

void reset(FusedJob& job) { job.done = job.final_done = job.hash_sum = 0; }

void publish(FusedJob& job, uint64_t steps) { job.done = job.final_done = steps * kLanes; }

bool usable(const DecodeTable& table, nz_dtype dtype) {
  return table.has_packed && (dtype == NZ_FP16 || dtype == NZ_FP32) && cpu_has_avx512_vbmi();
}

}  // namespace

NZ_TARGET_AVX512_FUSED void rans_decode_wide_avx512(const DecodeTable& table, nz_dtype dtype, FusedJob& job) {
  reset(job);
  if (!usable(table, dtype)) return;
  const WideConsts k(table, dtype);
  uint64_t steps = 0;
  if (dtype == NZ_FP32) {
    run_single<NZ_FP32>(k, job, steps);
  } else {
    run_single<NZ_FP16>(k, job, steps);
  }
  publish(job, steps);
}

NZ_TARGET_AVX512_FUSED void rans_decode_wide_avx512_pair(const DecodeTable& table, nz_dtype dtype, FusedJob& a,
                                                         FusedJob& b) {
  reset(a);
  reset(b);
  if (!usable(table, dtype)) return;
  const WideConsts k(table, dtype);
  uint64_t steps = 0;
  if (dtype == NZ_FP32) {
    run_pair<NZ_FP32>(k, a, b, steps);
  } else {
    run_pair<NZ_FP16>(k, a, b, steps);
  }
  // Whichever chunk has whole steps left goes on alone.
  for (FusedJob* job : {&a, &b}) {
    uint64_t job_steps = steps;
    if (dtype == NZ_FP32) {
      run_single<NZ_FP32>(k, *job, job_steps);
    } else {
      run_single<NZ_FP16>(k, *job, job_steps);
    }
    publish(*job, job_steps);
  }
}

}  // namespace nz::codec

#else

namespace nz::codec {
void rans_decode_wide_avx512(const DecodeTable&, nz_dtype, FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
}
void rans_decode_wide_avx512_pair(const DecodeTable& t, nz_dtype d, FusedJob& a, FusedJob& b) {
  rans_decode_wide_avx512(t, d, a);
  rans_decode_wide_avx512(t, d, b);
}
}  // namespace nz::codec

#endif
