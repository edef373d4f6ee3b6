// driver_api.cpp: fills a DriverApi from the libcuda.so.1 the dynamic linker finds.
//
// cuda.h #defines many entry points to their versioned ABI names (cuMemAlloc
// -> cuMemAlloc_v2, cuStreamDestroy -> cuStreamDestroy_v2, ...). The struct
// fields are spelled with the same macros, so stringifying the *expanded*
// field name gives exactly the symbol whose signature the field has.
#include "gpu/driver_api.h"

#include <dlfcn.h>
#include <fmt/format.h>

namespace nz::gpu {
namespace {

#define NZ_GPU_STRINGIFY_RAW(x) #x
#define NZ_GPU_STRINGIFY(x) NZ_GPU_STRINGIFY_RAW(x)

template <class Fn>
bool resolve(void* lib, Fn& slot, const char* versioned, std::string& error) {
  void* sym = dlsym(lib, versioned);
  if (sym == nullptr) {
    error = fmt::format("libcuda.so.1 has no entry point {}", versioned);
    return false;
  }
  slot = reinterpret_cast<Fn>(sym);
  return true;
}

}  // namespace

bool load_driver_api(DriverApi& api, std::string& error) {
  // Never closed: the function pointers must stay valid for the process.
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    error = fmt::format("cannot load libcuda.so.1: {}", why ? why : "unknown error");
    return false;
  }
  bool ok = true;
#define NZ_GPU_RESOLVE(field) ok = ok && resolve(lib, api.field, NZ_GPU_STRINGIFY(field), error)
  NZ_GPU_RESOLVE(cuInit);
  NZ_GPU_RESOLVE(cuDeviceGet);
  NZ_GPU_RESOLVE(cuDeviceGetName);
  NZ_GPU_RESOLVE(cuDeviceGetAttribute);
  NZ_GPU_RESOLVE(cuDevicePrimaryCtxRetain);
  NZ_GPU_RESOLVE(cuDevicePrimaryCtxRelease);
  NZ_GPU_RESOLVE(cuDevicePrimaryCtxGetState);
  NZ_GPU_RESOLVE(cuCtxGetCurrent);
  NZ_GPU_RESOLVE(cuCtxSetCurrent);
  NZ_GPU_RESOLVE(cuCtxGetDevice);
  NZ_GPU_RESOLVE(cuCtxSynchronize);
  NZ_GPU_RESOLVE(cuModuleLoadData);
  NZ_GPU_RESOLVE(cuModuleUnload);
  NZ_GPU_RESOLVE(cuModuleGetFunction);
  NZ_GPU_RESOLVE(cuLaunchKernel);
  NZ_GPU_RESOLVE(cuMemAlloc);
  NZ_GPU_RESOLVE(cuMemFree);
  NZ_GPU_RESOLVE(cuMemAllocHost);
  NZ_GPU_RESOLVE(cuMemFreeHost);
  NZ_GPU_RESOLVE(cuMemcpyHtoD);
  NZ_GPU_RESOLVE(cuMemcpyDtoH);
  NZ_GPU_RESOLVE(cuMemcpyDtoD);
  NZ_GPU_RESOLVE(cuMemcpyHtoDAsync);
  NZ_GPU_RESOLVE(cuMemcpyDtoHAsync);
  NZ_GPU_RESOLVE(cuMemcpyDtoDAsync);
  NZ_GPU_RESOLVE(cuMemsetD8Async);
  NZ_GPU_RESOLVE(cuMemGetInfo);
  NZ_GPU_RESOLVE(cuStreamCreate);
  NZ_GPU_RESOLVE(cuStreamDestroy);
  NZ_GPU_RESOLVE(cuStreamSynchronize);
  NZ_GPU_RESOLVE(cuStreamWaitEvent);
  NZ_GPU_RESOLVE(cuEventCreate);
  NZ_GPU_RESOLVE(cuEventDestroy);
  NZ_GPU_RESOLVE(cuEventRecord);
  NZ_GPU_RESOLVE(cuEventQuery);
  NZ_GPU_RESOLVE(cuEventSynchronize);
  NZ_GPU_RESOLVE(cuEventElapsedTime);
  NZ_GPU_RESOLVE(cuMemAddressReserve);
  NZ_GPU_RESOLVE(cuMemAddressFree);
  NZ_GPU_RESOLVE(cuMemCreate);
  NZ_GPU_RESOLVE(cuMemRelease);
  NZ_GPU_RESOLVE(cuMemMap);
  NZ_GPU_RESOLVE(cuMemUnmap);
  NZ_GPU_RESOLVE(cuMemSetAccess);
  NZ_GPU_RESOLVE(cuMemGetAllocationGranularity);
  NZ_GPU_RESOLVE(cuThreadExchangeStreamCaptureMode);
  NZ_GPU_RESOLVE(cuGetErrorName);
  NZ_GPU_RESOLVE(cuGetErrorString);
  api.cuFuncLoad = reinterpret_cast<decltype(api.cuFuncLoad)>(dlsym(lib, "cuFuncLoad"));
#undef NZ_GPU_RESOLVE
  return ok;
}

std::string describe(const DriverApi& api, CUresult r) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (api.cuGetErrorName == nullptr || api.cuGetErrorName(r, &name) != CUDA_SUCCESS) name = nullptr;
  if (api.cuGetErrorString == nullptr || api.cuGetErrorString(r, &text) != CUDA_SUCCESS) text = nullptr;
  return fmt::format("{}: {}", name ? name : fmt::format("CUresult {}", static_cast<int>(r)),
                     text ? text : "unknown error");
}

}  // namespace nz::gpu
