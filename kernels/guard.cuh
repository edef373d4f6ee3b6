// guard.cuh: the change test of a staged range whose pages are handed to
// another range's staging on the device (kernel_abi.h, GuardBatchArgs).
// One block per job: the block hashes the range (the sum of nzhash terms is
// order-free, so a block reduction gives the format's hash), and if it
// differs from the stored hash, copies the range to host memory before the
// decode that follows on the stream overwrites it.
#pragma once

#include <stdint.h>

#include "hash.cuh"
#include "kernel_abi.h"

namespace nz::kernels {

__device__ inline void guard_job(const GuardJob& job, uint32_t* flag) {
  __shared__ unsigned long long block_sum;
  __shared__ int changed;
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
  if (threadIdx.x == 0) changed = (block_sum + hash_init(job.len)) != job.expected;
  __syncthreads();
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
  if (threadIdx.x == 0) *flag = changed ? kGuardRescued : kGuardUnchanged;
}

// Grid: one block per job.
__device__ inline void guard_batch(const GuardBatchArgs& args) {
  if (blockIdx.x >= args.count) return;
  guard_job(args.jobs[blockIdx.x], reinterpret_cast<uint32_t*>(args.flags) + blockIdx.x);
}

}  // namespace nz::kernels
