// wrap_common.h: what every wrapper file needs. A wrapper is
//   nzw_<id>: count (tests only), find the real entry point, forward at once
//   when the runtime is inactive, else describe the call to the runtime (hooks.h).
#pragma once

#include <cuda.h>

#include "hook_table.h"
#include "runtime/hooks.h"

// Wrappers are reached through exported jumps, dlsym and cuGetProcAddress only.
#define NZ_WRAPPER extern "C" [[gnu::visibility("hidden")]]

// A legacy/per-thread pair of wrappers sharing one implementation template.
#define NZ_WRAP_PAIR(legacy_id, per_thread_id, impl, params, args)                    \
  NZ_WRAPPER CUresult nzw_##legacy_id params noexcept {                               \
    return impl<::nz::shim::Hook::legacy_id, false> args;                             \
  }                                                                                   \
  NZ_WRAPPER CUresult nzw_##per_thread_id params noexcept {                           \
    return impl<::nz::shim::Hook::per_thread_id, true> args;                          \
  }

namespace nz::shim {

template <typename Fn>
inline Fn real_of(Hook h) noexcept {
  return reinterpret_cast<Fn>(real_entry(h));
}

// The driver lacks the entry point (or could not be loaded): logged once per hook.
CUresult missing_entry(Hook h) noexcept;

inline rt::TransferDesc transfer_desc(const rt::Span* spans, size_t count, CUstream stream,
                                      bool per_thread, bool is_async, bool host_to_device,
                                      const char* api, const void* host_src = nullptr) noexcept {
  return rt::TransferDesc{spans, count, stream, per_thread, is_async, host_to_device, api, host_src};
}

// A copy source the program passed as a host address (not device memory,
// not managed by us): the destination it fills is a weight (or a pointer
// array), as after cuMemcpyHtoDAsync. One pointer query.
inline bool is_host_source(CUdeviceptr src) noexcept {
  if (rt::is_managed(src)) return false;
  auto query = real_of<CUresult (*)(void*, CUpointer_attribute, CUdeviceptr)>(Hook::PointerGetAttribute);
  unsigned type = 0;
  const bool device = query != nullptr && query(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, src) == CUDA_SUCCESS &&
                      type == CU_MEMORYTYPE_DEVICE;
  return !device;
}

// Protocol step 3 of hooks.h for copies and memsets.
template <typename Fn, typename... Args>
inline CUresult run_transfer(Fn real, const rt::TransferDesc& d, Args... args) noexcept {
  CUresult r = rt::before_transfer(d);
  if (r != CUDA_SUCCESS) return r;
  r = real(args...);
  rt::after_transfer(d, r);
  if (rt::is_sticky_error(r)) rt::on_sticky_error(r, d.api);
  return r;
}

}  // namespace nz::shim
