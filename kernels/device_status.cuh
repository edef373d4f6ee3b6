// device_status.cuh: how a kernel reports corrupt data. The first error wins
// the status word (for diagnostics); then the kernel traps, which makes the
// context report CUDA_ERROR_LAUNCH_FAILED so no later work consumes garbage.
#pragma once

#include <stdint.h>

#include "neuzip/neuzip.h"

namespace nz::kernels {

__device__ __noinline__ void fail_and_trap(uint32_t* status, nz_status code) {
  if (status) atomicCAS(status, 0u, uint32_t(code));
  __threadfence_system();
  __trap();
}

}  // namespace nz::kernels
