// Turning host page faults into device faults. A work item (kernel, copy,
// memset, host function) runs under a guard on its worker thread; a SIGSEGV or
// SIGBUS inside the simulated device address space (or, for copies and
// memsets, anywhere) aborts the item via siglongjmp. Faults outside a guard,
// or outside the device range for kernels, go to the previous handler.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace nzsim {

void install_fault_handler();

struct GuardOutcome {
  bool faulted = false;
  uintptr_t address = 0;
  CUresult result = CUDA_SUCCESS;  // the body's result when it did not fault
};

// Runs body(arg) under a guard. `any_address`: every fault counts (copies and
// memsets touching invalid host memory fault too); otherwise only faults in
// device memory or the null page do. Frames between the guard and the fault
// are abandoned without running destructors, as a GPU abandons a kernel.
GuardOutcome run_guarded(bool any_address, CUresult (*body)(void*), void* arg);

}  // namespace nzsim
