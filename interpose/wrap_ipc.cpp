// wrap_ipc.cpp: legacy CUDA IPC. Memory neuzip serves is virtual memory,
// which the driver's legacy IPC cannot export; the runtime shares it another
// way (src/runtime/ipc_export.cpp) and opens such handles in the importing
// process (ipc_import.cpp). Everything else goes to the driver.
#include "wrap_common.h"

using nz::shim::Hook;
using nz::shim::real_of;

NZ_WRAPPER CUresult nzw_IpcGetMemHandle(CUipcMemHandle* handle, CUdeviceptr p) noexcept {
  NZ_ENTER(IpcGetMemHandle);
  auto real = real_of<CUresult (*)(CUipcMemHandle*, CUdeviceptr)>(Hook::IpcGetMemHandle);
  if (!real) return nz::shim::missing_entry(Hook::IpcGetMemHandle);
  CUresult r = CUDA_SUCCESS;
  if (nz::rt::ipc_export(handle, p, &r)) return r;
  return real(handle, p);
}

namespace {

CUresult open_handle(Hook id, CUdeviceptr* out, CUipcMemHandle handle, unsigned flags) noexcept {
  auto real = real_of<CUresult (*)(CUdeviceptr*, CUipcMemHandle, unsigned)>(id);
  if (!real) return nz::shim::missing_entry(id);
  CUresult r = CUDA_SUCCESS;
  if (nz::rt::ipc_open(out, handle, flags, &r)) return r;
  return real(out, handle, flags);
}

}  // namespace

NZ_WRAPPER CUresult nzw_IpcOpenMemHandle_v1(CUdeviceptr* out, CUipcMemHandle handle, unsigned flags) noexcept {
  NZ_ENTER(IpcOpenMemHandle_v1);
  return open_handle(Hook::IpcOpenMemHandle_v1, out, handle, flags);
}

NZ_WRAPPER CUresult nzw_IpcOpenMemHandle_v2(CUdeviceptr* out, CUipcMemHandle handle, unsigned flags) noexcept {
  NZ_ENTER(IpcOpenMemHandle_v2);
  return open_handle(Hook::IpcOpenMemHandle_v2, out, handle, flags);
}

NZ_WRAPPER CUresult nzw_IpcCloseMemHandle(CUdeviceptr p) noexcept {
  NZ_ENTER(IpcCloseMemHandle);
  auto real = real_of<CUresult (*)(CUdeviceptr)>(Hook::IpcCloseMemHandle);
  if (!real) return nz::shim::missing_entry(Hook::IpcCloseMemHandle);
  CUresult r = CUDA_SUCCESS;
  if (nz::rt::ipc_close(p, &r)) return r;
  return real(p);
}
