// wrap_queries.cpp: pointer queries and free memory. Memory the runtime serves
// with VMM answers as the cuMemAlloc memory the program asked for (the
// runtime decides the answers; this file only routes them). IPC: wrap_ipc.cpp.

#include "wrap_common.h"

using nz::shim::Hook;
using nz::shim::real_of;

NZ_WRAPPER CUresult nzw_MemGetAddressRange_v2(CUdeviceptr* base, size_t* size, CUdeviceptr p) noexcept {
  NZ_ENTER(MemGetAddressRange_v2);
  auto real = real_of<CUresult (*)(CUdeviceptr*, size_t*, CUdeviceptr)>(Hook::MemGetAddressRange_v2);
  if (!real) return nz::shim::missing_entry(Hook::MemGetAddressRange_v2);
  if (nz::rt::active() && nz::rt::address_range(p, base, size)) return CUDA_SUCCESS;
  return real(base, size, p);
}

NZ_WRAPPER CUresult nzw_PointerGetAttribute(void* data, CUpointer_attribute attribute, CUdeviceptr p) noexcept {
  NZ_ENTER(PointerGetAttribute);
  auto real = real_of<CUresult (*)(void*, CUpointer_attribute, CUdeviceptr)>(Hook::PointerGetAttribute);
  if (!real) return nz::shim::missing_entry(Hook::PointerGetAttribute);
  CUresult r = CUDA_SUCCESS;
  if (nz::rt::active() && nz::rt::pointer_attribute(data, attribute, p, &r)) return r;
  return real(data, attribute, p);
}

NZ_WRAPPER CUresult nzw_PointerGetAttributes(unsigned count, CUpointer_attribute* attributes, void** data,
                                             CUdeviceptr p) noexcept {
  NZ_ENTER(PointerGetAttributes);
  auto real = real_of<CUresult (*)(unsigned, CUpointer_attribute*, void**, CUdeviceptr)>(Hook::PointerGetAttributes);
  if (!real) return nz::shim::missing_entry(Hook::PointerGetAttributes);
  if (!nz::rt::active() || attributes == nullptr || data == nullptr || !nz::rt::is_managed(p))
    return real(count, attributes, data, p);
  // Like the driver: an attribute that cannot be answered leaves its slot
  // alone and does not fail the call.
  auto single = real_of<CUresult (*)(void*, CUpointer_attribute, CUdeviceptr)>(Hook::PointerGetAttribute);
  for (unsigned i = 0; i < count; ++i) {
    CUresult r = CUDA_SUCCESS;
    if (!nz::rt::pointer_attribute(data[i], attributes[i], p, &r) && single != nullptr) single(data[i], attributes[i], p);
  }
  return CUDA_SUCCESS;
}

NZ_WRAPPER CUresult nzw_MemRetainAllocationHandle(CUmemGenericAllocationHandle* handle, void* address) noexcept {
  NZ_ENTER(MemRetainAllocationHandle);
  auto real = real_of<CUresult (*)(CUmemGenericAllocationHandle*, void*)>(Hook::MemRetainAllocationHandle);
  if (!real) return nz::shim::missing_entry(Hook::MemRetainAllocationHandle);
  // cuMemAlloc memory has no VMM handle: NCCL and UCX pick their path on this.
  if (nz::rt::active() && nz::rt::is_managed(reinterpret_cast<CUdeviceptr>(address))) return CUDA_ERROR_INVALID_VALUE;
  const CUresult r = real(handle, address);
  if (r == CUDA_SUCCESS && handle != nullptr && nz::rt::active()) nz::rt::on_program_handle_retain(*handle);
  return r;
}

NZ_WRAPPER CUresult nzw_PointerSetAttribute(const void* value, CUpointer_attribute attribute, CUdeviceptr p) noexcept {
  NZ_ENTER(PointerSetAttribute);
  auto real = real_of<CUresult (*)(const void*, CUpointer_attribute, CUdeviceptr)>(Hook::PointerSetAttribute);
  if (!real) return nz::shim::missing_entry(Hook::PointerSetAttribute);
  CUresult r = CUDA_SUCCESS;
  if (nz::rt::active() && nz::rt::set_pointer_attribute(value, attribute, p, &r)) return r;
  return real(value, attribute, p);
}

NZ_WRAPPER CUresult nzw_MemGetInfo_v2(size_t* free, size_t* total) noexcept {
  NZ_ENTER(MemGetInfo_v2);
  auto real = real_of<CUresult (*)(size_t*, size_t*)>(Hook::MemGetInfo_v2);
  if (!real) return nz::shim::missing_entry(Hook::MemGetInfo_v2);
  CUresult r = real(free, total);
  if (r == CUDA_SUCCESS && free != nullptr && total != nullptr && nz::rt::active())
    nz::rt::adjust_free_memory(free, *total);
  return r;
}
