// driver_loader.h: the few CUDA driver entry points vmmprobe needs, taken
// from dlopen("libcuda.so.1") so the tool builds without a driver and runs on
// whichever libcuda.so.1 the loader finds (the real one, or tests/sim's).
#pragma once

#include <cuda.h>

#include <string>

#include "common/driver_library.h"

namespace vmmprobe {

// Prototypes come from cuda.h, so a mismatch is a compile error. cuda.h maps
// some names to versioned symbols (cuMemAlloc -> cuMemAlloc_v2); the loader
// looks up the mapped name.
#define VMMPROBE_DRIVER_FUNCTIONS(X)                                                                   \
  X(cuInit) X(cuDeviceGet) X(cuDeviceGetName) X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) \
  X(cuCtxSetCurrent) X(cuCtxSynchronize) X(cuMemGetAllocationGranularity) X(cuMemCreate) X(cuMemRelease) \
  X(cuMemAddressReserve) X(cuMemAddressFree) X(cuMemMap) X(cuMemUnmap) X(cuMemSetAccess) X(cuMemAlloc)   \
  X(cuMemFree) X(cuMemsetD32Async) X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize)           \
  X(cuEventCreate) X(cuEventDestroy) X(cuEventRecord) X(cuEventQuery) X(cuEventSynchronize)             \
  X(cuGetErrorName)

class Driver {
 public:
  // False with `error` when the library or an entry point is missing.
  bool load(std::string& error);
  // "CUDA_ERROR_X (n)".
  std::string describe(CUresult r) const;

#define VMMPROBE_DECLARE(fn) decltype(&::fn) fn = nullptr;
  VMMPROBE_DRIVER_FUNCTIONS(VMMPROBE_DECLARE)
#undef VMMPROBE_DECLARE

 private:
  nz::tools::DriverLibrary library_;
};

}  // namespace vmmprobe
