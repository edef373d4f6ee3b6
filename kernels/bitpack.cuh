// bitpack.cuh: LSB-first bit packing of fixed-width values (docs/FORMAT.md §3.1).
//
// Sections start 4-byte aligned, so values are read from u32 words: a value of
// at most 25 bits starting at any bit spans at most two words.
#pragma once

#include <stdint.h>

namespace nz::kernels {

__device__ inline uint32_t low_mask(uint32_t width) { return width >= 32 ? 0xFFFFFFFFu : (1u << width) - 1u; }

// Value i of width `width` (<= 25) from a section of u32 words. `i` indexes
// inside one chunk (< 2^22 elements), so `i * width` < 2^27 fits 32 bits:
// 32-bit index arithmetic saves the 64-bit multiply/shift of every element.
__device__ inline uint32_t unpack_value(const uint32_t* section, uint32_t i, uint32_t width) {
  uint32_t bit = i * width;
  uint32_t w = bit >> 5;
  uint32_t shift = bit & 31u;
  uint32_t lo = __ldg(section + w);
  uint32_t hi = (shift + width > 32) ? __ldg(section + w + 1) : 0u;
  return __funnelshift_r(lo, hi, shift) & low_mask(width);
}

// Packs the values of 32 consecutive elements (one per lane, `value` already
// masked to `width` bits, 0 for lanes past the end) into `width` words; lane j
// (< width) returns word j of the group, the others return 0. The group starts
// at a word boundary because 32 * width bits is a whole number of words.
__device__ inline uint32_t pack_warp_group(uint32_t value, uint32_t width) {
  const uint32_t lane = threadIdx.x & 31u;
  const uint32_t my_bit = lane * width;
  uint32_t mine = 0;
  for (uint32_t j = 0; j < width; ++j) {
    uint32_t word_bit = j * 32u;
    uint32_t part = 0;
    if (my_bit >= word_bit) {
      if (my_bit - word_bit < 32u) part = value << (my_bit - word_bit);
    } else if (my_bit + width > word_bit) {
      part = value >> (word_bit - my_bit);
    }
    uint32_t word = __reduce_or_sync(0xFFFFFFFFu, part);
    if (lane == j) mine = word;
  }
  return mine;
}

}  // namespace nz::kernels
