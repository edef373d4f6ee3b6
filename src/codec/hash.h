// hash.h: nzhash (docs/FORMAT.md section 5). A sum of mixed (index, word)
// pairs, so it can be computed piecewise: start with hash_seed(len), add the
// words of each piece with hash_add_words at their global word index.
#pragma once

#include <cstddef>
#include <cstdint>

#include "codec/cpu_level.h"

namespace nz::codec {

constexpr uint64_t mix64(uint64_t z) {
  z ^= z >> 33;
  z *= 0xFF51AFD7ED558CCDull;
  z ^= z >> 33;
  z *= 0xC4CEB9FE1A85EC53ull;
  z ^= z >> 33;
  return z;
}

constexpr uint64_t hash_seed(uint64_t len) { return mix64(len ^ 0x9E3779B97F4A7C15ull); }

// Sum of mix64((j << 32) | w_j) over the `byte_len` bytes at `data`, whose first
// word has index `first_word`. A trailing partial word is zero padded.
// Vectorised up to `level` (default: cpu_level()); every level gives the same sum.
uint64_t hash_add_bytes(const void* data, size_t byte_len, uint64_t first_word, CpuLevel level);
uint64_t hash_add_bytes(const void* data, size_t byte_len, uint64_t first_word);

// nzhash of a whole byte range.
uint64_t nzhash(const void* data, size_t len, CpuLevel level);
uint64_t nzhash(const void* data, size_t len);

}  // namespace nz::codec
