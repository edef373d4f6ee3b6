// launch_scan.h: the 8-byte words a kernel launch passes by value, which is
// where pointers to weights hide (plain pointers, interior pointers, structs of
// pointers passed by value; a TMA descriptor's address on the simulator).
//
// With kernelParams, the size of each parameter comes from cuFuncGetParamInfo
// or cuKernelGetParamInfo, cached per handle; with `extra`
// (CU_LAUNCH_PARAM_BUFFER_POINTER) the whole buffer is scanned.
#pragma once

#include <cuda.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "runtime/hooks.h"

namespace nz::rt {

class ParamLayoutCache {
 public:
  // Sizes of the parameters of the launched function; false when unknown.
  bool sizes(const LaunchDesc& d, std::vector<uint32_t>& out);
  // Handles of unloaded modules may be reused for other kernels.
  void clear();

 private:
  std::shared_mutex mutex_;
  std::unordered_map<const void*, std::vector<uint32_t>> known_;  // empty vector + flag below = unknown
  std::unordered_map<const void*, bool> failed_;
};

// Calls blob(bytes, size, accounted) for each parameter (or the `extra`
// buffer) of at least 128 bytes, where TMA descriptors passed by value hide,
// then fn(word) for each 8-byte aligned word of the parameters that does not
// lie in a 128-byte descriptor whose offset blob appended to `accounted` (a
// descriptor whose reach is known: its address word must not count as a raw
// pointer's). Nothing is cleared or filled per launch unless blob marks one.
// Returns false when the parameters could not be read (no layout): the caller
// must assume the launch may touch anything. May throw (std::bad_alloc).
template <typename Fn, typename Blob>
bool for_each_param_word(const LaunchDesc& d, ParamLayoutCache& cache, Fn&& fn, Blob&& blob) {
  thread_local std::vector<size_t> accounted;
  auto scan = [&](const unsigned char* bytes, size_t size) {
    accounted.clear();
    if (size >= 128) blob(bytes, size, accounted);
    for (size_t off = 0; off + 8 <= size; off += 8) {
      if (!accounted.empty() &&
          std::any_of(accounted.begin(), accounted.end(), [&](size_t at) { return off >= at && off < at + sizeof(CUtensorMap); }))
        continue;
      uint64_t w;
      std::memcpy(&w, bytes + off, 8);
      fn(w);
    }
  };
  if (d.kernel_params != nullptr) {
    thread_local std::vector<uint32_t> sizes;
    if (!cache.sizes(d, sizes)) return false;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (d.kernel_params[i] != nullptr) scan(static_cast<const unsigned char*>(d.kernel_params[i]), sizes[i]);
    }
    return true;
  }
  if (d.extra == nullptr) return true;
  const unsigned char* buffer = nullptr;
  size_t buffer_size = 0;
  for (size_t i = 0; d.extra[i] != CU_LAUNCH_PARAM_END && i < 64; i += 2) {
    if (d.extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buffer = static_cast<const unsigned char*>(d.extra[i + 1]);
    else if (d.extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE && d.extra[i + 1] != nullptr)
      buffer_size = *static_cast<const size_t*>(d.extra[i + 1]);
  }
  if (buffer != nullptr) scan(buffer, buffer_size);
  return true;
}

}  // namespace nz::rt
