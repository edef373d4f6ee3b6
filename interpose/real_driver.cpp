// real_driver.cpp: loading the real driver and handing its entry points to the runtime.
#include "real_driver.h"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "runtime/hooks.h"
#include "shim_log.h"

namespace nz::shim {
namespace {

std::atomic<DlsymFn> g_real_dlsym{nullptr};
std::atomic<void*> g_driver{nullptr};
std::once_flag g_driver_once;
std::once_flag g_init_once;
thread_local bool t_loading = false;

// The handle name the real driver is known by; tests point the dynamic linker
// at the simulator with LD_LIBRARY_PATH, not by changing this name.
constexpr const char* kDriverName = "libcuda.so.1";

}  // namespace

void write_log_line(const char* text, size_t length) noexcept {
  while (length > 0) {
    ssize_t n = ::write(STDERR_FILENO, text, length);
    if (n <= 0) return;
    text += n;
    length -= static_cast<size_t>(n);
  }
}

DlsymFn real_dlsym() noexcept {
  DlsymFn fn = g_real_dlsym.load(std::memory_order_acquire);
  if (fn) return fn;
  // dlvsym is not overridden, and RTLD_NEXT from this library finds libc's dlsym.
  void* p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
  if (!p) p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
  if (!p) p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.17");  // aarch64 baseline
  fn = reinterpret_cast<DlsymFn>(p);
  if (!fn) {
    static constexpr char kMsg[] = "neuzip: cannot find glibc's dlsym; interposition disabled\n";
    write_log_line(kMsg, sizeof(kMsg) - 1);
    fn = [](void*, const char*) -> void* { return nullptr; };
  }
  g_real_dlsym.store(fn, std::memory_order_release);
  return fn;
}

bool loading_on_this_thread() noexcept { return t_loading; }

void* driver_handle() noexcept {
  void* h = g_driver.load(std::memory_order_acquire);
  if (h || t_loading) return h;
  try {
    std::call_once(g_driver_once, [] {
      t_loading = true;
      real_dlsym();  // resolve before libcuda's constructors may call dlsym
      void* handle = dlopen(kDriverName, RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        const char* why = dlerror();
        log_line("cannot load {}: {}", kDriverName, why ? why : "unknown error");
      }
      g_driver.store(handle, std::memory_order_release);
      t_loading = false;
    });
  } catch (...) {
    t_loading = false;
  }
  return g_driver.load(std::memory_order_acquire);
}

void* real_driver_symbol(const char* name) noexcept {
  void* h = driver_handle();
  return h ? real_dlsym()(h, name) : nullptr;
}

namespace {

rt::RuntimeDriverApi collect_runtime_api() noexcept {
  rt::RuntimeDriverApi api{};
  // Field = current ABI of the call (cuda.h maps e.g. cuMemAlloc to cuMemAlloc_v2).
#define NZ_FILL(field, symbol) \
  field = reinterpret_cast<decltype(field)>(real_driver_symbol(symbol))
  gpu::DriverApi& b = api.base;
  NZ_FILL(b.cuInit, "cuInit");
  NZ_FILL(b.cuDeviceGet, "cuDeviceGet");
  NZ_FILL(b.cuDeviceGetName, "cuDeviceGetName");
  NZ_FILL(b.cuDeviceGetAttribute, "cuDeviceGetAttribute");
  NZ_FILL(b.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  NZ_FILL(b.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  NZ_FILL(b.cuDevicePrimaryCtxGetState, "cuDevicePrimaryCtxGetState");
  NZ_FILL(b.cuCtxGetCurrent, "cuCtxGetCurrent");
  NZ_FILL(b.cuCtxSetCurrent, "cuCtxSetCurrent");
  NZ_FILL(b.cuCtxGetDevice, "cuCtxGetDevice");
  NZ_FILL(b.cuCtxSynchronize, "cuCtxSynchronize");
  NZ_FILL(b.cuModuleLoadData, "cuModuleLoadData");
  NZ_FILL(b.cuModuleUnload, "cuModuleUnload");
  NZ_FILL(b.cuModuleGetFunction, "cuModuleGetFunction");
  NZ_FILL(b.cuLaunchKernel, "cuLaunchKernel");
  NZ_FILL(b.cuMemAlloc, "cuMemAlloc_v2");
  NZ_FILL(b.cuMemFree, "cuMemFree_v2");
  NZ_FILL(b.cuMemAllocHost, "cuMemAllocHost_v2");
  NZ_FILL(b.cuMemFreeHost, "cuMemFreeHost");
  NZ_FILL(b.cuMemcpyHtoD, "cuMemcpyHtoD_v2");
  NZ_FILL(b.cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  NZ_FILL(b.cuMemcpyDtoD, "cuMemcpyDtoD_v2");
  NZ_FILL(b.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  NZ_FILL(b.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  NZ_FILL(b.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
  NZ_FILL(b.cuMemsetD8Async, "cuMemsetD8Async");
  NZ_FILL(b.cuMemGetInfo, "cuMemGetInfo_v2");
  NZ_FILL(b.cuStreamCreate, "cuStreamCreate");
  NZ_FILL(b.cuStreamDestroy, "cuStreamDestroy_v2");
  NZ_FILL(b.cuStreamSynchronize, "cuStreamSynchronize");
  NZ_FILL(b.cuStreamWaitEvent, "cuStreamWaitEvent");
  NZ_FILL(b.cuEventCreate, "cuEventCreate");
  NZ_FILL(b.cuEventDestroy, "cuEventDestroy_v2");
  NZ_FILL(b.cuEventRecord, "cuEventRecord");
  NZ_FILL(b.cuEventQuery, "cuEventQuery");
  NZ_FILL(b.cuEventSynchronize, "cuEventSynchronize");
  NZ_FILL(b.cuEventElapsedTime, "cuEventElapsedTime_v2");
  NZ_FILL(b.cuMemAddressReserve, "cuMemAddressReserve");
  NZ_FILL(b.cuMemAddressFree, "cuMemAddressFree");
  NZ_FILL(b.cuMemCreate, "cuMemCreate");
  NZ_FILL(b.cuMemRelease, "cuMemRelease");
  NZ_FILL(b.cuMemMap, "cuMemMap");
  NZ_FILL(b.cuMemUnmap, "cuMemUnmap");
  NZ_FILL(b.cuMemSetAccess, "cuMemSetAccess");
  NZ_FILL(b.cuMemGetAllocationGranularity, "cuMemGetAllocationGranularity");
  NZ_FILL(b.cuThreadExchangeStreamCaptureMode, "cuThreadExchangeStreamCaptureMode");
  NZ_FILL(b.cuGetErrorName, "cuGetErrorName");
  NZ_FILL(b.cuGetErrorString, "cuGetErrorString");
  NZ_FILL(b.cuFuncLoad, "cuFuncLoad");
  NZ_FILL(api.cuFuncGetParamInfo, "cuFuncGetParamInfo");
  NZ_FILL(api.cuKernelGetParamInfo, "cuKernelGetParamInfo");
  NZ_FILL(api.cuKernelGetFunction, "cuKernelGetFunction");
  NZ_FILL(api.cuStreamIsCapturing, "cuStreamIsCapturing");
  NZ_FILL(api.capture_info_v3, "cuStreamGetCaptureInfo_v3");
  NZ_FILL(api.capture_info_v1, "cuStreamGetCaptureInfo");  // the unversioned symbol: the 10.1 ABI
  NZ_FILL(api.cuStreamGetCtx, "cuStreamGetCtx");
  NZ_FILL(api.cuMemGetAddressRange, "cuMemGetAddressRange_v2");
  NZ_FILL(api.cuPointerGetAttribute, "cuPointerGetAttribute");
  NZ_FILL(api.cuMemGetAccess, "cuMemGetAccess");
  NZ_FILL(api.cuDeviceGetCount, "cuDeviceGetCount");
  NZ_FILL(api.cuMemAllocAsync, "cuMemAllocAsync");
  NZ_FILL(api.cuMemFreeAsync, "cuMemFreeAsync");
  NZ_FILL(api.cuFuncGetName, "cuFuncGetName");
  NZ_FILL(api.cuKernelGetName, "cuKernelGetName");
  NZ_FILL(api.cuMemExportToShareableHandle, "cuMemExportToShareableHandle");
  NZ_FILL(api.cuMemImportFromShareableHandle, "cuMemImportFromShareableHandle");
  NZ_FILL(api.cuCtxGetFlags, "cuCtxGetFlags");
  NZ_FILL(api.cuCtxSetFlags, "cuCtxSetFlags");
  NZ_FILL(api.cuStreamGetFlags, "cuStreamGetFlags");
  NZ_FILL(api.cuStreamQuery, "cuStreamQuery");
#undef NZ_FILL
  return api;
}

}  // namespace

void notify_driver_initialised() noexcept {
  try {
    std::call_once(g_init_once, [] { rt::on_driver_initialised(collect_runtime_api()); });
  } catch (...) {
    log_line("runtime start-up failed; continuing as pass-through");
  }
}

}  // namespace nz::shim
