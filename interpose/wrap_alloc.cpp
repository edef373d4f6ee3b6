// wrap_alloc.cpp: allocation and free. cuMemAlloc/cuMemFree go to the runtime
// first; the other allocators are forwarded and only their frees reported,
// and the memory of cuMemCreate and cuMemAllocAsync counted (never compressed:
// a run whose weights live there is told so, unserved_memory.h).
// Any real allocation failing with OUT_OF_MEMORY is retried once when the
// runtime says it released memory.
#include "wrap_common.h"

namespace nz::shim {
namespace {

// Calls `alloc` and, on OUT_OF_MEMORY, lets the runtime evict and retries once.
template <typename Alloc>
CUresult with_oom_retry(size_t bytes, Alloc alloc) noexcept {
  CUresult r = alloc();
  if (r == CUDA_ERROR_OUT_OF_MEMORY && rt::active() && rt::on_out_of_memory(bytes)) r = alloc();
  return r;
}

template <Hook H, bool PT>
CUresult alloc_async(CUdeviceptr* p, size_t bytes, CUstream st) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr*, size_t, CUstream)>(H);
  if (!real) return missing_entry(H);
  const CUresult r = with_oom_retry(bytes, [&] { return real(p, bytes, st); });
  if (r == CUDA_SUCCESS && p != nullptr && rt::active()) rt::on_unserved_alloc(rt::UnservedKind::kStreamOrdered, *p, bytes);
  return r;
}

template <Hook H, bool PT>
CUresult free_async(CUdeviceptr p, CUstream st) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, CUstream)>(H);
  if (!real) return missing_entry(H);
  if (rt::active()) {
    bool handled = false;
    CUresult r = rt::mem_free_async(p, st, PT, &handled);
    if (handled) return r;
    rt::on_foreign_free(p);
  }
  return real(p, st);
}

}  // namespace
}  // namespace nz::shim

using nz::shim::Hook;
using nz::shim::real_of;

NZ_WRAPPER CUresult nzw_MemAlloc_v2(CUdeviceptr* p, size_t bytes) noexcept {
  NZ_ENTER(MemAlloc_v2);
  auto real = real_of<CUresult (*)(CUdeviceptr*, size_t)>(Hook::MemAlloc_v2);
  if (!real) return nz::shim::missing_entry(Hook::MemAlloc_v2);
  if (nz::rt::active()) {
    bool handled = false;
    CUresult r = nz::rt::mem_alloc(p, bytes, &handled);
    if (handled) return r;
  }
  return nz::shim::with_oom_retry(bytes, [&] { return real(p, bytes); });
}

NZ_WRAPPER CUresult nzw_MemFree_v2(CUdeviceptr p) noexcept {
  NZ_ENTER(MemFree_v2);
  auto real = real_of<CUresult (*)(CUdeviceptr)>(Hook::MemFree_v2);
  if (!real) return nz::shim::missing_entry(Hook::MemFree_v2);
  if (nz::rt::active()) {
    bool handled = false;
    CUresult r = nz::rt::mem_free(p, &handled);
    if (handled) return r;
    // Tags on memory the runtime did not serve must go before the address can be reused.
    nz::rt::on_foreign_free(p);
  }
  return real(p);
}

NZ_WRAPPER CUresult nzw_MemAllocPitch_v2(CUdeviceptr* p, size_t* pitch, size_t width, size_t height,
                                         unsigned element_bytes) noexcept {
  NZ_ENTER(MemAllocPitch_v2);
  auto real = real_of<CUresult (*)(CUdeviceptr*, size_t*, size_t, size_t, unsigned)>(
      Hook::MemAllocPitch_v2);
  if (!real) return nz::shim::missing_entry(Hook::MemAllocPitch_v2);
  return nz::shim::with_oom_retry(width * height,
                                  [&] { return real(p, pitch, width, height, element_bytes); });
}

NZ_WRAPPER CUresult nzw_MemAllocManaged(CUdeviceptr* p, size_t bytes, unsigned flags) noexcept {
  NZ_ENTER(MemAllocManaged);
  auto real = real_of<CUresult (*)(CUdeviceptr*, size_t, unsigned)>(Hook::MemAllocManaged);
  if (!real) return nz::shim::missing_entry(Hook::MemAllocManaged);
  return nz::shim::with_oom_retry(bytes, [&] { return real(p, bytes, flags); });
}

NZ_WRAPPER CUresult nzw_MemCreate(CUmemGenericAllocationHandle* h, size_t bytes,
                                  const CUmemAllocationProp* prop, unsigned long long flags) noexcept {
  NZ_ENTER(MemCreate);
  auto real = real_of<CUresult (*)(CUmemGenericAllocationHandle*, size_t, const CUmemAllocationProp*,
                                   unsigned long long)>(Hook::MemCreate);
  if (!real) return nz::shim::missing_entry(Hook::MemCreate);
  const CUresult r = nz::shim::with_oom_retry(bytes, [&] { return real(h, bytes, prop, flags); });
  if (r == CUDA_SUCCESS && h != nullptr && nz::rt::active())
    nz::rt::on_unserved_alloc(nz::rt::UnservedKind::kProgramVmm, *h, bytes);
  return r;
}

// The program's own handles (not the runtime's: it calls the driver directly).
// Told before the real call, as frees are: once released, the driver may give
// the same handle value to another thread's cuMemCreate.
NZ_WRAPPER CUresult nzw_MemRelease(CUmemGenericAllocationHandle h) noexcept {
  NZ_ENTER(MemRelease);
  auto real = real_of<CUresult (*)(CUmemGenericAllocationHandle)>(Hook::MemRelease);
  if (!real) return nz::shim::missing_entry(Hook::MemRelease);
  if (nz::rt::active()) nz::rt::on_program_handle_release(h);
  return real(h);
}

NZ_WRAP_PAIR(MemAllocAsync, MemAllocAsync_ptsz, nz::shim::alloc_async,
             (CUdeviceptr * p, size_t bytes, CUstream st), (p, bytes, st))
NZ_WRAP_PAIR(MemFreeAsync, MemFreeAsync_ptsz, nz::shim::free_async, (CUdeviceptr p, CUstream st),
             (p, st))
