// c_api.cpp: the C API of runtime.h, exported from libneuzip.so.
#include "neuzip/runtime.h"

#include <cstring>

#include "runtime/runtime.h"

#define NZ_RT_EXPORT extern "C" __attribute__((visibility("default")))

using nz::rt::Runtime;

NZ_RT_EXPORT int nz_tag(uint64_t ptr, size_t bytes, int dtype) {
  Runtime* rt = Runtime::instance_if_active();
  return rt == nullptr ? NZ_RT_INACTIVE : rt->tag(ptr, bytes, dtype);
}

NZ_RT_EXPORT int nz_untag(uint64_t ptr, size_t bytes) {
  Runtime* rt = Runtime::instance_if_active();
  return rt == nullptr ? NZ_RT_INACTIVE : rt->untag(ptr, bytes);
}

NZ_RT_EXPORT int nz_stats(nz_runtime_stats* out, size_t size_bytes) {
  if (out == nullptr) return NZ_RT_INVALID;
  Runtime* rt = Runtime::instance_if_active();
  if (rt == nullptr) return NZ_RT_INACTIVE;
  nz_runtime_stats s{};
  rt->fill_stats(s);
  // An older caller's struct is a prefix of ours; a newer one's tail stays zero.
  std::memset(out, 0, size_bytes);
  std::memcpy(out, &s, size_bytes < sizeof s ? size_bytes : sizeof s);
  return NZ_RT_OK;
}

NZ_RT_EXPORT int nz_flush(void) {
  Runtime* rt = Runtime::instance_if_active();
  if (rt == nullptr) return NZ_RT_INACTIVE;
  rt->compress_pending(true);
  return NZ_RT_OK;
}

NZ_RT_EXPORT const char* nz_rt_error_string(int code) {
  switch (code) {
    case NZ_RT_OK: return "success";
    case NZ_RT_INACTIVE: return "the neuzip runtime is not active (NEUZIP=0, no CUDA, or before cuInit)";
    case NZ_RT_INVALID: return "invalid pointer, size or flags";
    case NZ_RT_NOT_MANAGED: return "the range is not in memory the runtime manages";
    default: return "unknown neuzip runtime error";
  }
}
