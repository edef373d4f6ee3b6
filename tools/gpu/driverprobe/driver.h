// driver.h: the CUDA driver entry points driverprobe uses, from
// dlopen("libcuda.so.1") (the real driver, or tests/sim's on LD_LIBRARY_PATH).
// Unlike vmmprobe, a missing entry point is a finding, not a failure: the
// probe that needs it says so in its output.
#pragma once

#include <cuda.h>

#include <string>

#include "common/driver_library.h"

namespace driverprobe {

// cuda.h maps some names to versioned symbols (cuMemAlloc -> cuMemAlloc_v2);
// the loader looks up the mapped name, so the prototype and the symbol agree.
#define DRIVERPROBE_FUNCTIONS(X)                                                                              \
  X(cuInit) X(cuDriverGetVersion) X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceGetAttribute)                   \
  X(cuDeviceTotalMem) X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuCtxSetCurrent)             \
  X(cuCtxSynchronize) X(cuMemAlloc) X(cuMemFree) X(cuMemGetAllocationGranularity) X(cuMemCreate)               \
  X(cuMemRelease) X(cuMemAddressReserve) X(cuMemAddressFree) X(cuMemMap) X(cuMemUnmap) X(cuMemSetAccess)      \
  X(cuMemsetD32) X(cuMemcpyDtoH) X(cuPointerGetAttribute) X(cuMemGetAddressRange) X(cuTensorMapEncodeTiled)   \
  X(cuGetErrorName) X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize) X(cuEventCreate)             \
  X(cuEventDestroy) X(cuEventRecord) X(cuEventQuery) X(cuStreamIsCapturing) X(cuThreadExchangeStreamCaptureMode) \
  X(cuStreamWaitEvent) X(cuMemGetAccess) X(cuMemAllocAsync) X(cuMemFreeAsync) X(cuMemGetInfo)               \
  X(cuMemGetHandleForAddressRange)

struct Driver {
  // False with `error` when libcuda.so.1 cannot be loaded.
  bool load(std::string& error);
  // "CUDA_SUCCESS", "CUDA_ERROR_X", or "CUresult n".
  std::string name(CUresult r) const;
  // The names of the entry points the library lacks, comma separated.
  std::string missing() const;

#define DRIVERPROBE_DECLARE(fn) decltype(&::fn) fn = nullptr;
  DRIVERPROBE_FUNCTIONS(DRIVERPROBE_DECLARE)
#undef DRIVERPROBE_DECLARE

 private:
  nz::tools::DriverLibrary library_;
};

}  // namespace driverprobe
