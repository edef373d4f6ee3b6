// kernel_registry.h: which opaque launch handles are CUkernels (from
// cuLibraryGetKernel) rather than CUfunctions. Lock-free and insert-only:
// the launch path does a few loads, never a lock.
#pragma once

#include <cuda.h>

namespace nz::shim {

void remember_kernel(CUkernel k) noexcept;
bool is_known_kernel(const void* handle) noexcept;

}  // namespace nz::shim
