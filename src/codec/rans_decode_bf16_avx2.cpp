// Fused AVX2 decoder for bf16 rANS chunks, the AVX2 counterpart of
// rans_decode_bf16_avx512.cpp: rANS symbols (rans_step_avx2.h), the merge
// with the raw values, and (when the merged element is the output:
// lossless, or lossy without blocks) the nzhash terms (hash_avx2.h) in one
// pass, so the output is written once and hashed while in registers.
//
// Why fused: a step is a latency chain (gather -> multiply -> compare ->
// permute) on four vectors of states. The merge and hash of the step do
// not depend on that chain's next link and fill the execution ports it
// leaves idle, instead of costing two more passes over the chunk.
#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "codec/hash_avx2.h"
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
  // half's first: past the raw section only into the chunk's word stream,
  // which the caller keeps at least 64 bytes long while it steps.
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

  NZ_TARGET_AVX2 Consts(const DecodeTable& table, uint32_t raw_bits)
      : step(table),
        unpack(raw_bits),
        keep(_mm256_set1_epi16(static_cast<short>(0x8000 | ((0xFFu << (8 - raw_bits)) & 0x7F)))) {}
};

// bf16 = sign << 15 | symbol << 7 | the kept mantissa bits (dropped bits zero).
NZ_TARGET_AVX2 inline __m256i merge(const Consts& k, __m256i shifted_symbols, __m256i raw) {
  return _mm256_or_si256(shifted_symbols, _mm256_and_si256(raw, k.keep));
}

// Decodes whole steps of one chunk from `steps` on; hashes them when kHash.
template <bool kLossless, bool kHash>
NZ_TARGET_AVX2 void run(const Consts& k, FusedJob& job, uint64_t& steps) {
  avx2::Stream s(*job.dec);
  avx2::HashIndex h(steps * kLanes / 2);
  const uint64_t full_steps = job.count / kLanes;
  uint64_t step = steps;
  for (; step < full_steps && s.can_step(); ++step) {
    __m256i e[4];
    s.step(k.step, e);
    for (int half = 0; half < 2; ++half) {
      const __m256i v = merge(k, avx2::symbols_u16<7>(e[2 * half], e[2 * half + 1]),
                              k.unpack.half<kLossless>(job.raw, step, half));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(job.dst + 64 * step + 32 * half), v);
      if constexpr (kHash) avx2::hash_words(k.hash, h, v);
    }
  }
  steps = step;
  s.save(*job.dec);
  if constexpr (kHash) job.hash_sum += h.total();
}

}  // namespace

NZ_TARGET_AVX2 void rans_decode_bf16_avx2(const DecodeTable& table, const Bf16FusedParams& params, FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
  if (!table.has_avx2 || params.kept_bits > 7) return;
  const Consts k(table, 1 + params.kept_bits);
  uint64_t steps = 0;
  // Without block scaling the merged elements are the output: hash them on
  // the way. With it, only merge; the caller scales and hashes the chunk.
  const bool hash = params.block_log2 == 0;
  if (params.kept_bits == 7) {
    run<true, true>(k, job, steps);
  } else if (hash) {
    run<false, true>(k, job, steps);
  } else {
    run<false, false>(k, job, steps);
  }
  job.done = steps * kLanes;
  job.final_done = hash ? job.done : 0;
}

}  // namespace nz::codec

#else

namespace nz::codec {
void rans_decode_bf16_avx2(const DecodeTable&, const Bf16FusedParams&, FusedJob& job) {
  job.done = job.final_done = job.hash_sum = 0;
}
}  // namespace nz::codec

#endif
