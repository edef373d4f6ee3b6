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
// The rANS step itself, the hash tail and the stream state are shared with
// the fp16/fp32 decoder (rans_step_avx512.h).
#include <utility>

#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "codec/rans_step_avx512.h"

namespace nz::codec {

namespace {

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

  NZ_TARGET_AVX512_FUSED explicit RawUnpacker(uint32_t r) : raw_bits(r) {
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
  NZ_TARGET_AVX512_FUSED __m512i step(const uint8_t* raw, uint64_t step_index) const {
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

// Constants of the fused step, built once per call.
struct FusedConsts : fused::StepConsts {
  RawUnpacker unpack;
  __m512i sym_pick, low7, sign, index_step;

  NZ_TARGET_AVX512_FUSED FusedConsts(const DecodeTable& table, uint32_t raw_bits)
      : fused::StepConsts(table), unpack(raw_bits) {
    // Byte 2i of the merged vector is the symbol of lane i (byte 3 of its
    // table entry, in e0 for lanes 0-15 and e1 for 16-31); odd bytes are zeroed.
    alignas(64) uint8_t pick[64];
    for (int i = 0; i < 32; ++i) {
      pick[2 * i] = static_cast<uint8_t>(i < 16 ? 4 * i + 3 : 64 + 4 * (i - 16) + 3);
      pick[2 * i + 1] = 0;
    }
    sym_pick = _mm512_load_si512(pick);
    low7 = _mm512_set1_epi16(0x7F);
    sign = _mm512_set1_epi16(static_cast<short>(0x8000));
    // A step adds 16 to the word index j: 16 << 32 to the high part of the
    // index term and 8 to j >> 1 (j >> 1 < 2^31, so no carry crosses).
    index_step = _mm512_set1_epi64((16ll << 32) + 8);
  }
};

// One chunk's stream in registers; the hash step covers the 16 output words
// of a step.
struct FusedStream : fused::StreamState {
  // A plain constructor, not an inherited one: GCC does not early-inline the
  // inherited-constructor thunk, which changes its inlining of the run loops.
  NZ_TARGET_AVX512_FUSED FusedStream(const RansDecoder& dec, const uint8_t* raw_section, uint8_t* out,
                                     uint64_t first_word)
      : fused::StreamState(dec, raw_section, out, first_word) {}

  template <bool kLossless, bool kHash>
  NZ_TARGET_AVX512_FUSED inline void step(const FusedConsts& k, uint64_t step_index) {
    __m512i e0, e1;
    rans_step(k, e0, e1);

    // bf16 = sign (raw bit 7) << 15 | symbol << 7 | raw bits 0-6.
    const __m512i sym = _mm512_maskz_permutex2var_epi8(0x5555555555555555ull, e0, k.sym_pick, e1);
    const __m512i r = k.unpack.step<kLossless>(raw, step_index);
    __m512i v = _mm512_ternarylogic_epi32(_mm512_slli_epi16(sym, 7), r, k.low7, 0xF8);  // a | (b & c)
    v = _mm512_ternarylogic_epi32(v, _mm512_slli_epi16(r, 8), k.sign, 0xF8);

    _mm512_storeu_si512(dst + 2 * kLanes * step_index, v);

    if constexpr (kHash) {
      // nzhash terms of the 16 output words.
      const __m512i index_odd = _mm512_add_epi64(index_even, k.odd_word);
      const __m512i z_even = _mm512_ternarylogic_epi64(v, k.low32, index_even, 0x6A);  // (a & b) ^ c
      const __m512i z_odd =
          _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(v, _MM_PERM_DDBB), k.low32, index_odd, 0x6A);
      sum = _mm512_add_epi64(
          sum, _mm512_add_epi64(fused::mix64x8_tail(z_even, k.c1, k.c2), fused::mix64x8_tail(z_odd, k.c1, k.c2)));
      index_even = _mm512_add_epi64(index_even, k.index_step);
    }
  }
};

// Where a job stands: steps done in each phase.
struct JobProgress {
  uint64_t final_steps = 0;  // output final and hashed
  uint64_t steps = 0;        // merged
};

// Without block scaling the merged elements are the output: hash them on
// the way. With it, only merge (the caller scales and hashes the chunk while
// it is in cache; doing that here too was measured slower: the loop then
// runs out of vector ports and registers).
template <bool kLossless>
NZ_TARGET_AVX512_FUSED void run_single(const FusedConsts& k, const FusedParams& p, FusedJob& job,
                                       JobProgress& prog) {
  const uint64_t full_steps = job.count / kLanes;
  FusedStream s(*job.dec, job.raw, job.dst, prog.steps * kLanes / 2);
  // FusedStream addresses raw and dst from step 0 of the chunk.
  uint64_t step = prog.steps;
  if (p.block_log2 == 0) {
    for (; step < full_steps && s.can_step(); ++step) s.step<kLossless, true>(k, step);
    prog.final_steps = step;
  } else {
    for (; step < full_steps && s.can_step(); ++step) s.step<kLossless, false>(k, step);
  }
  prog.steps = step;
  s.save(*job.dec);
  job.hash_sum += s.hash_sum();
}

// Two chunks interleaved: each step of one chunk is a latency chain on only
// two vectors, so a second independent chain nearly doubles the work done
// per cycle until the execution ports fill up. Runs both as far as both can go.
template <bool kLossless>
NZ_TARGET_AVX512_FUSED void run_pair(const FusedConsts& k, const FusedParams& p, FusedJob& a,
                                     FusedJob& b, JobProgress& pa, JobProgress& pb) {
  FusedStream sa(*a.dec, a.raw, a.dst, 0);
  FusedStream sb(*b.dec, b.raw, b.dst, 0);
  const uint64_t full_a = a.count / kLanes, full_b = b.count / kLanes;
  const uint64_t full_steps = full_a < full_b ? full_a : full_b;
  uint64_t step = 0;
  if (p.block_log2 == 0) {
    for (; step < full_steps && sa.can_step() && sb.can_step(); ++step) {
      sa.step<kLossless, true>(k, step);
      sb.step<kLossless, true>(k, step);
    }
  } else {
    for (; step < full_steps && sa.can_step() && sb.can_step(); ++step) {
      sa.step<kLossless, false>(k, step);
      sb.step<kLossless, false>(k, step);
    }
  }
  sa.save(*a.dec);
  sb.save(*b.dec);
  a.hash_sum = sa.hash_sum();
  b.hash_sum = sb.hash_sum();
  pa.steps = pb.steps = step;
  pa.final_steps = pb.final_steps = p.block_log2 == 0 ? step : 0;
}

void reset(FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
}

void publish(FusedJob& job, const JobProgress& prog) {
  job.done = prog.steps * kLanes;
  job.final_done = prog.final_steps * kLanes;
}

}  // namespace

NZ_TARGET_AVX512_FUSED void rans_decode_bf16_avx512(const DecodeTable& table, const FusedParams& params,
                                                    FusedJob& job) {
  reset(job);
  if (!table.has_packed || params.kept_bits > 7) return;
  const FusedConsts k(table, 1 + params.kept_bits);
  JobProgress prog;
  if (params.kept_bits == 7) {
    run_single<true>(k, params, job, prog);
  } else {
    run_single<false>(k, params, job, prog);
  }
  publish(job, prog);
}

NZ_TARGET_AVX512_FUSED void rans_decode_bf16_avx512_pair(const DecodeTable& table, const FusedParams& params,
                                                         FusedJob& a, FusedJob& b) {
  reset(a);
  reset(b);
  if (!table.has_packed || params.kept_bits > 7) return;
  const FusedConsts k(table, 1 + params.kept_bits);
  JobProgress pa, pb;
  const bool lossless = params.kept_bits == 7;
  if (lossless) {
    run_pair<true>(k, params, a, b, pa, pb);
  } else {
    run_pair<false>(k, params, a, b, pa, pb);
  }
  // Whichever chunk has whole steps left goes on alone.
  for (auto [job, prog] : {std::pair{&a, &pa}, std::pair{&b, &pb}}) {
    if (lossless) {
      run_single<true>(k, params, *job, *prog);
    } else {
      run_single<false>(k, params, *job, *prog);
    }
    publish(*job, *prog);
  }
}

}  // namespace nz::codec

#else

namespace nz::codec {
void rans_decode_bf16_avx512(const DecodeTable&, const FusedParams&, FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
}
void rans_decode_bf16_avx512_pair(const DecodeTable& t, const FusedParams& p, FusedJob& a, FusedJob& b) {
  rans_decode_bf16_avx512(t, p, a);
  rans_decode_bf16_avx512(t, p, b);
}
}  // namespace nz::codec

#endif
