// rans_step_avx2.h: the AVX2 rANS decoding step (docs/FORMAT.md 4.1) on the
// 32 lanes of a step, held as four vectors of 8 states (lanes 8q .. 8q + 7
// in x[q]); shared by the symbol decoder and the fused decoders.
//
// Per vector: one gather from the AVX2 slot table (DecodeTable::avx2:
// bias in bits 0-11, symbol 12-19, frequency 20-31), the multiply-add, and
// the renormalisation. AVX2 has no expand instruction, so
// the lanes that renormalise take their words with a byte shuffle chosen by
// the 8-bit lane mask from a 256-entry table, whose row also holds the
// per-lane shift (16 or 0) that makes room for them: x << shift | word for
// every lane, no blend (16 KiB, with the 8 KiB slot table still inside L1). The four masks are computed before any word
// is read, so each vector's words start at an offset known from the masks
// of the vectors before it: the four renormalisations do not wait for each
// other.
//
// Include only from an AVX2 translation unit (simd_avx2.h).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "codec/rans.h"
#include "codec/simd_avx2.h"

namespace nz::codec::avx2 {

// For each 8-bit lane mask, one 64-byte row (one cache line):
// * pick: the byte shuffle that gives lane i word
//   popcount(mask & ((1 << i) - 1)) of the 8 words loaded (16 bytes, the
//   same in both 128-bit halves) at the vector's offset, zero-extended;
//   lanes outside the mask get zero. One vpshufb instead of a
//   zero-extension and a cross-lane permutation.
// * shift: 16 for the lanes in the mask, 0 for the others, so that
//   x << shift | word is the renormalised state of every lane (no blend).
struct ExpandTable {
  struct alignas(64) Row {
    uint8_t pick[32];
    uint32_t shift[8];
  };
  std::array<Row, 256> row;
};

constexpr ExpandTable make_expand_table() {
  ExpandTable t{};
  for (uint32_t m = 0; m < 256; ++m) {
    uint32_t next = 0;
    for (uint32_t i = 0; i < 8; ++i) {
      const bool takes = (m >> i) & 1u;
      t.row[m].pick[4 * i] = takes ? static_cast<uint8_t>(2 * next) : 0x80;
      t.row[m].pick[4 * i + 1] = takes ? static_cast<uint8_t>(2 * next + 1) : 0x80;
      t.row[m].pick[4 * i + 2] = t.row[m].pick[4 * i + 3] = 0x80;
      t.row[m].shift[i] = takes ? 16 : 0;
      next += takes;
    }
  }
  return t;
}

inline constexpr ExpandTable kExpand = make_expand_table();

// Needs table.has_avx2.
struct StepConsts {
  __m256i slot_mask, bias_mask;
  __m128i prob_shift;
  const int* tab;

  NZ_TARGET_AVX2 explicit StepConsts(const DecodeTable& table) {
    slot_mask = _mm256_set1_epi32(static_cast<int>((1u << table.prob_bits) - 1));
    bias_mask = _mm256_set1_epi32(0xFFF);
    prob_shift = _mm_cvtsi32_si128(static_cast<int>(table.prob_bits));
    tab = reinterpret_cast<const int*>(table.avx2.data());
  }
};

// One chunk's rANS stream in registers.
//
// A step reads 16 bytes at each vector's word offset, up to 32 words past
// the step's first word. While 32 words remain that stays inside the
// stream; after that the stream's last words are copied into `tail`,
// followed by zeros, and the steps go on reading from there. A valid
// stream never consumes the zeros (its positions stay below word_count),
// so the loop covers every whole step of a chunk; a corrupt one that does
// is stopped once the next step could read past `tail`, and overrun()
// tells the caller (the decoder then reports the chunk corrupt).
// The tail buffer: a chunk's last words and zeros after them.
using StreamTail = uint16_t[2 * kLanes];

// Copies the `left` (< 32) words at `words` into `tail` and zeros the rest.
// Out of line: only the last steps of a chunk get here, and taking the
// tail's address inside the hot loop would keep the states out of registers.
__attribute__((noinline)) inline const uint8_t* enter_tail(const uint8_t* words, uint64_t left, StreamTail& tail) {
  std::memcpy(tail, words, 2 * left);
  std::memset(tail + left, 0, sizeof(StreamTail) - 2 * left);
  return reinterpret_cast<const uint8_t*>(tail);
}

struct Stream {
  __m256i x[4];
  uint64_t pos;         // in the stream, or (in the tail) in `tail`
  uint64_t word_count;  // of the stream
  const uint8_t* words;
  uint16_t* tail;
  uint64_t tail_start = 0;  // stream position of tail[0]; 0 until the tail is in use
  bool in_tail = false;

  NZ_TARGET_AVX2 Stream(const RansDecoder& dec, StreamTail& tail_buffer)
      : pos(dec.pos), word_count(dec.word_count), words(dec.words), tail(tail_buffer) {
    for (int q = 0; q < 4; ++q) x[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dec.x + 8 * q));
  }

  bool can_step() {
    if (pos + kLanes <= (in_tail ? 2 * kLanes : word_count)) return true;
    if (in_tail || pos > word_count) return false;
    words = enter_tail(words + 2 * pos, word_count - pos, *reinterpret_cast<StreamTail*>(tail));
    tail_start = pos;
    pos = 0;
    in_tail = true;
    return true;
  }

  // Whether the steps consumed words past the end of the stream.
  bool overrun() const { return tail_start + pos > word_count; }

  // Back into `dec`; the position never past the end of the stream.
  NZ_TARGET_AVX2 void save(RansDecoder& dec) const {
    for (int q = 0; q < 4; ++q) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dec.x + 8 * q), x[q]);
    dec.pos = overrun() ? word_count : tail_start + pos;
  }

  // One step; e[q] receives the table entries (symbol in bits 12-19) of x[q]'s lanes.
  // The loops over the four vectors are unrolled so that the states stay in
  // registers (GCC does not unroll them at -O2 by itself).
  NZ_TARGET_AVX2 inline void step(const StepConsts& k, __m256i e[4]) {
    uint32_t mask[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      e[q] = _mm256_i32gather_epi32(k.tab, _mm256_and_si256(x[q], k.slot_mask), 4);
      x[q] = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_srli_epi32(e[q], 20), _mm256_srl_epi32(x[q], k.prob_shift)),
                              _mm256_and_si256(e[q], k.bias_mask));
      // A lane renormalises when its high 16 bits are zero: the top bit of
      // the 16-bit comparison's high half, which vmovmskps reads.
      mask[q] = static_cast<uint32_t>(
          _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi16(x[q], _mm256_setzero_si256()))));
    }
    uint64_t at = pos;
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m256i loaded = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(words + 2 * at)));
      const ExpandTable::Row& row = kExpand.row[mask[q]];
      const __m256i next = _mm256_shuffle_epi8(loaded, _mm256_load_si256(reinterpret_cast<const __m256i*>(row.pick)));
      const __m256i shift = _mm256_load_si256(reinterpret_cast<const __m256i*>(row.shift));
      x[q] = _mm256_or_si256(_mm256_sllv_epi32(x[q], shift), next);
      at += static_cast<uint64_t>(__builtin_popcount(mask[q]));
    }
    pos = at;
  }
};

// The symbols of two entry vectors (lanes 0-7 and 8-15 of a step half),
// shifted left by kShift (<= 8), as 16 u16 lanes in lane order.
template <int kShift>
NZ_TARGET_AVX2 inline __m256i symbols_u16(__m256i e_lo, __m256i e_hi) {
  const __m256i mask = _mm256_set1_epi32(0xFF << kShift);
  const __m256i lo = _mm256_and_si256(_mm256_srli_epi32(e_lo, 12 - kShift), mask);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(e_hi, 12 - kShift), mask);
  // packus works within 128-bit halves: lanes come out as 0-3, 8-11, 4-7, 12-15.
  return _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
}

}  // namespace nz::codec::avx2
