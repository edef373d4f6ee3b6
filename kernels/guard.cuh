// guard.cuh: the change test of a staged range whose pages are handed to
// another range's staging on the device (kernel_abi.h, GuardBatchArgs).
// One block per job: the block hashes the range (the sum of nzhash terms is
// order-free, so a block reduction gives the format's hash), and if it
// differs from the stored hash (or, for an encode handover, if the encoding
// that ran before it is not whole), copies the range to host memory before
// the decode that follows on the stream overwrites it.
#pragma once

#include <stdint.h>

#include "hash.cuh"
#include "kernel_abi.h"

namespace nz::kernels {

__device__ inline void guard_job(const GuardJob& job, uint32_t* flag) {
  __shared__ unsigned long long block_sum;
  __shared__ int changed;
  __shared__ unsigned long long header;  // encode handovers: header bytes to keep (0: rescue)
  if (threadIdx.x == 0) block_sum = 0;
  __syncthreads();
  const uint8_t* data = reinterpret_cast<const uint8_t*>(job.data);
  const bool aligned = (job.data & 3u) == 0;
  const uint64_t words = (job.len + 3) / 4;
  uint64_t sum = 0;
  for (uint64_t j = threadIdx.x; j < words; j += blockDim.x) sum += hash_term(j, load_word(data, job.len, j, aligned));
  sum = warp_sum(sum);
  if ((threadIdx.x & 31u) == 0) atomicAdd(&block_sum, static_cast<unsigned long long>(sum));
  __syncthreads();
  uint64_t* result = reinterpret_cast<uint64_t*>(job.result);
  const uint8_t* store = reinterpret_cast<const uint8_t*>(job.store);
  if (threadIdx.x == 0) {
    const uint64_t hash = block_sum + hash_init(job.len);
    header = 0;
    if (job.mode == kGuardCompare) {
      changed = hash != job.expected;
    } else {
      // The encode before this kernel wrote its length to result[0].
      result[1] = hash;
      if (job.mode == kGuardEncodedOrSame && hash == job.expected) {
        changed = 0;
      } else {
        header = guard_header_bytes(store, result[0], job.store_cap, job.header_cap, job.len);
        changed = header == 0;  // not a whole encoding: the bytes go to host memory
      }
    }
    block_sum = 0;
  }
  __syncthreads();
  if (header > 0) {
    // The header checksum, as the host will check it: nz_hash of the header
    // and tables with the checksum's own 8 bytes read as 0.
    const uint64_t header_words = (header + 3) / 4;
    const bool store_aligned = (job.store & 3u) == 0;
    uint64_t part = 0;
    for (uint64_t j = threadIdx.x; j < header_words; j += blockDim.x) {
      const uint32_t w = (j == kHeaderChecksumAt / 4 || j == kHeaderChecksumAt / 4 + 1)
                             ? 0u
                             : load_word(store, header, j, store_aligned);
      part += hash_term(j, w);
    }
    part = warp_sum(part);
    if ((threadIdx.x & 31u) == 0) atomicAdd(&block_sum, static_cast<unsigned long long>(part));
  }
  __syncthreads();
  if (threadIdx.x == 0 && header > 0) {
    uint64_t expected = 0;
    for (unsigned i = 0; i < 8; ++i) expected |= uint64_t{store[kHeaderChecksumAt + i]} << (8 * i);
    if (block_sum + hash_init(header) != expected) {
      header = 0;
      changed = 1;
    }
  }
  __syncthreads();
  if (header > 0) {
    uint8_t* out = reinterpret_cast<uint8_t*>(job.result) + kGuardResultHeader;
    for (uint64_t i = threadIdx.x; i < header; i += blockDim.x) out[i] = store[i];
    __threadfence_system();
  }
  if (changed) {
    uint8_t* out = reinterpret_cast<uint8_t*>(job.rescue);
    if (((job.data | job.rescue | job.len) & 15u) == 0) {
      const uint4* src = reinterpret_cast<const uint4*>(data);
      uint4* dst = reinterpret_cast<uint4*>(out);
      for (uint64_t i = threadIdx.x; i < job.len / 16; i += blockDim.x) dst[i] = src[i];
    } else {
      for (uint64_t i = threadIdx.x; i < job.len; i += blockDim.x) out[i] = data[i];
    }
    // The host reads the copy once the stream's event after this kernel completed.
    __threadfence_system();
  }
  __syncthreads();
  if (threadIdx.x == 0) *flag = changed ? kGuardRescued : header > 0 ? kGuardStored : kGuardUnchanged;
}

// Grid: one block per job.
__device__ inline void guard_batch(const GuardBatchArgs& args) {
  if (blockIdx.x >= args.count) return;
  guard_job(args.jobs[blockIdx.x], reinterpret_cast<uint32_t*>(args.flags) + blockIdx.x);
}

}  // namespace nz::kernels
