// freq_table.cuh: the buffer's frequency table (docs/FORMAT.md §2.2) parsed
// and validated by a block into shared memory, plus the slot -> symbol table
// the rANS decoder looks up once per element.
//
// With P <= 12 (the encoder uses 11) one u32 per slot holds everything a step
// needs (symbol | (slot - cum) << 8 | (freq - 1) << 20): a single shared load.
// Larger P falls back to a byte per slot plus a per-symbol freq/cum word.
#pragma once

#include <stdint.h>

#include "device_status.cuh"
#include "format.cuh"

namespace nz::kernels {

inline constexpr uint32_t kPackedTableMaxProbBits = 12;

struct SharedFreqTable {
  uint32_t fc[256];  // freq | cum << 16 (freq may be 2^15, cum < 2^15)
  union {
    uint32_t packed[1u << kPackedTableMaxProbBits];
    uint8_t symbol[1u << 15];
  } slots;
  uint32_t error;
};

// Exclusive prefix sum over the warp.
__device__ inline uint32_t warp_exclusive_sum(uint32_t v, uint32_t& total) {
  const uint32_t lane = threadIdx.x & 31u;
  uint32_t incl = v;
  for (int d = 1; d < 32; d <<= 1) {
    uint32_t o = __shfl_up_sync(0xFFFFFFFFu, incl, d);
    if (lane >= uint32_t(d)) incl += o;
  }
  total = __shfl_sync(0xFFFFFFFFu, incl, 31);
  return incl - v;
}

// Called by every thread of the block. On a malformed table, writes the status
// and traps. `table` points at the table (64 bytes into the buffer).
__device__ inline void load_freq_table(SharedFreqTable& sh, const uint8_t* table, uint32_t table_bytes,
                                       uint32_t exp_bits, uint32_t prob_bits, uint32_t* status) {
  const uint32_t alphabet = 1u << exp_bits;
  const uint32_t bitmap_bytes = alphabet / 8;
  if (threadIdx.x == 0) sh.error = 0;
  __syncthreads();
  if (threadIdx.x < 32) {
    const uint32_t lane = threadIdx.x;
    const uint32_t per_lane = alphabet / 32;  // 8 (E = 8) or 1 (E = 5)
    uint32_t bits = 0;
    if (table_bytes >= bitmap_bytes) {
      bits = per_lane == 8 ? table[lane] : (table[lane / 8] >> (lane % 8)) & 1u;
    }
    uint32_t present_total;
    uint32_t index = warp_exclusive_sum(__popc(bits), present_total);
    uint64_t used = bitmap_bytes + 2ull * present_total;
    bool size_ok = table_bytes >= bitmap_bytes && round_up(used, 8) == table_bytes;
    uint32_t freqs[8];
    uint32_t lane_sum = 0;
    bool zero_freq = false;
    for (uint32_t k = 0; k < per_lane; ++k) {
      uint32_t f = 0;
      if (size_ok && ((bits >> k) & 1u)) {
        const uint8_t* p = table + bitmap_bytes + 2u * index++;
        f = uint32_t(p[0]) | (uint32_t(p[1]) << 8);
        zero_freq |= f == 0;
      }
      freqs[k] = f;
      lane_sum += f;
    }
    uint32_t total;
    uint32_t cum = warp_exclusive_sum(lane_sum, total);
    for (uint32_t k = 0; k < per_lane; ++k) {
      sh.fc[lane * per_lane + k] = freqs[k] | (cum << 16);
      cum += freqs[k];
    }
    // Padding after the last frequency must be zero.
    bool pad_ok = true;
    if (size_ok) {
      for (uint64_t b = used + lane; b < table_bytes; b += 32) pad_ok &= table[b] == 0;
    }
    bool bad = !size_ok || zero_freq || total != (1u << prob_bits) || !pad_ok;
    if (__any_sync(0xFFFFFFFFu, bad) && lane == 0) sh.error = 1;
  }
  __syncthreads();
  if (sh.error) fail_and_trap(status, NZ_ERR_CORRUPT_HEADER);
  const uint32_t slots = 1u << prob_bits;
  const bool packed = prob_bits <= kPackedTableMaxProbBits;
  for (uint32_t slot = threadIdx.x; slot < slots; slot += blockDim.x) {
    // The largest symbol whose cum <= slot is the present symbol owning it.
    uint32_t lo = 0, hi = alphabet;  // invariant: answer in [lo, hi)
    while (hi - lo > 1) {
      uint32_t mid = (lo + hi) / 2;
      if ((sh.fc[mid] >> 16) <= slot) lo = mid; else hi = mid;
    }
    uint32_t fc = sh.fc[lo];
    if (packed) {
      sh.slots.packed[slot] = lo | ((slot - (fc >> 16)) << 8) | (((fc & 0xFFFFu) - 1u) << 20);
    } else {
      sh.slots.symbol[slot] = uint8_t(lo);
    }
  }
  __syncthreads();
}

}  // namespace nz::kernels
