// nzhash.cuh: the format's checksum (docs/FORMAT.md §5). A sum of independent
// per-word terms, so any thread can add its words and a warp reduces.
#pragma once

#include <stdint.h>

namespace nz::kernels {

inline constexpr uint64_t kHashSeed = 0x9E3779B97F4A7C15ull;

__host__ __device__ inline uint64_t mix64(uint64_t z) {
  z ^= z >> 33;
  z *= 0xFF51AFD7ED558CCDull;
  z ^= z >> 33;
  z *= 0xC4CEB9FE1A85EC53ull;
  z ^= z >> 33;
  return z;
}

// The term of the u32 word with index j.
__host__ __device__ inline uint64_t hash_term(uint64_t j, uint32_t word) { return mix64((j << 32) | word); }

__host__ __device__ inline uint64_t hash_init(uint64_t len) { return mix64(len ^ kHashSeed); }

__device__ inline uint64_t warp_sum(uint64_t v) {
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, d);
  return v;
}

}  // namespace nz::kernels
