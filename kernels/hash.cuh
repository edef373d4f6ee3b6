// hash.cuh: nzhash of an arbitrary device range. Every thread sums the terms
// of a grid-strided set of words, the block reduces with shuffles and adds its
// sum to the output with one 64-bit atomic (addition mod 2^64 is what the
// format's hash is, so the order does not matter).
#pragma once

#include <stdint.h>

#include "nzhash.cuh"

namespace nz::kernels {

// Word j of the range, zero-padded past `len`; `aligned` when data % 4 == 0.
__device__ inline uint32_t load_word(const uint8_t* data, uint64_t len, uint64_t j, bool aligned) {
  uint64_t at = j * 4;
  if (aligned && at + 4 <= len) return __ldg(reinterpret_cast<const uint32_t*>(data) + j);
  uint32_t w = 0;
  for (uint32_t b = 0; b < 4 && at + b < len; ++b) w |= uint32_t(data[at + b]) << (8 * b);
  return w;
}

__device__ inline void hash_range(const uint8_t* data, uint64_t len, uint64_t* out) {
  __shared__ uint64_t block_sum;
  if (threadIdx.x == 0) block_sum = 0;
  __syncthreads();
  const bool aligned = (reinterpret_cast<uintptr_t>(data) & 3u) == 0;
  const uint64_t words = (len + 3) / 4;
  uint64_t sum = 0;
  for (uint64_t j = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < words; j += uint64_t(gridDim.x) * blockDim.x) {
    sum += hash_term(j, load_word(data, len, j, aligned));
  }
  sum = warp_sum(sum);
  if ((threadIdx.x & 31u) == 0) atomicAdd(reinterpret_cast<unsigned long long*>(&block_sum), sum);
  __syncthreads();
  if (threadIdx.x == 0) {
    uint64_t total = block_sum + (blockIdx.x == 0 ? hash_init(len) : 0);
    atomicAdd(reinterpret_cast<unsigned long long*>(out), total);
  }
}

}  // namespace nz::kernels
