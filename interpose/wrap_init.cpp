// wrap_init.cpp: cuInit (starts the runtime after the real driver is up) and
// route (c), cuGetProcAddress: the CUDA runtime (12+) fetches every driver
// entry point this way, so the hooked ones are swapped for our wrappers.
#include <atomic>

#include "real_driver.h"
#include "shim_log.h"
#include "wrap_common.h"

namespace nz::shim {

CUresult missing_entry(Hook h) noexcept {
  static std::atomic<bool> warned[kHookCount];
  if (!warned[static_cast<size_t>(h)].exchange(true))
    log_line("the driver has no entry point for hook #{}; returning CUDA_ERROR_NOT_FOUND",
             static_cast<unsigned>(h));
  return CUDA_ERROR_NOT_FOUND;
}

}  // namespace nz::shim

using nz::shim::Hook;
using nz::shim::real_of;

NZ_WRAPPER CUresult nzw_Init(unsigned flags) noexcept {
  NZ_ENTER(Init);
  auto real = real_of<CUresult (*)(unsigned)>(Hook::Init);
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  CUresult r = real(flags);
  // Only now: nothing of ours touches CUDA before the real driver is initialised.
  if (r == CUDA_SUCCESS) nz::shim::notify_driver_initialised();
  return r;
}

NZ_WRAPPER CUresult nzw_GetProcAddress_v2(const char* symbol, void** pfn, int version,
                                          cuuint64_t flags,
                                          CUdriverProcAddressQueryResult* status) noexcept {
  NZ_ENTER(GetProcAddress_v2);
  auto real = real_of<decltype(&nzw_GetProcAddress_v2)>(Hook::GetProcAddress_v2);
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  CUresult r = real(symbol, pfn, version, flags, status);
  // Substitute only real successes; symbolStatus and errors pass through as given
  // (cuGetExportTable and everything unhooked are never touched).
  if (r != CUDA_SUCCESS || !pfn || !*pfn || (status && *status != CU_GET_PROC_ADDRESS_SUCCESS))
    return r;
  if (void* w = nz::shim::substitute_proc(symbol, version, flags, *pfn)) *pfn = w;
  return r;
}

NZ_WRAPPER CUresult nzw_GetProcAddress_v1(const char* symbol, void** pfn, int version,
                                          cuuint64_t flags) noexcept {
  NZ_ENTER(GetProcAddress_v1);
  auto real = real_of<decltype(&nzw_GetProcAddress_v1)>(Hook::GetProcAddress_v1);
  if (!real) return CUDA_ERROR_NOT_INITIALIZED;
  CUresult r = real(symbol, pfn, version, flags);
  if (r != CUDA_SUCCESS || !pfn || !*pfn) return r;
  if (void* w = nz::shim::substitute_proc(symbol, version, flags, *pfn)) *pfn = w;
  return r;
}
