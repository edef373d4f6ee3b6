// wrap_dmabuf.cpp: cuMemGetHandleForAddressRange, a device range exported as
// a dma-buf for a NIC or a storage driver (NCCL's network plugins, UCX,
// libfabric, cuFile). The device behind the dma-buf reads and writes the
// pages the range had when it was exported, so memory neuzip serves is first
// made resident for good (src/runtime/dmabuf_export.cpp); then the driver
// exports it.
#include <unistd.h>

#include "wrap_common.h"

using nz::shim::Hook;
using nz::shim::real_of;

NZ_WRAPPER CUresult nzw_MemGetHandleForAddressRange(void* handle, CUdeviceptr p, size_t bytes,
                                                    CUmemRangeHandleType type, unsigned long long flags) noexcept {
  NZ_ENTER(MemGetHandleForAddressRange);
  auto real = real_of<CUresult (*)(void*, CUdeviceptr, size_t, CUmemRangeHandleType, unsigned long long)>(
      Hook::MemGetHandleForAddressRange);
  if (!real) return nz::shim::missing_entry(Hook::MemGetHandleForAddressRange);
  // What the driver refuses anyway (cuda.h: the pointer and the size aligned
  // to the host page size) costs the allocation nothing.
  static const uint64_t host_page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const bool aligned = host_page == 0 || (p % host_page == 0 && bytes % host_page == 0);
  if (handle != nullptr && bytes != 0 && aligned && type == CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD) {
    CUresult r = CUDA_SUCCESS;
    if (nz::rt::before_dmabuf_export(p, bytes, &r) && r != CUDA_SUCCESS) return r;
  }
  return real(handle, p, bytes, type, flags);
}
