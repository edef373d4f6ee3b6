#include "runtime/staging_pool.h"

#include <algorithm>

namespace nz::rt {

CUresult StagingPool::acquire(size_t bytes, UniquePhysicalMemory& out) noexcept {
  auto it = cache_.find(bytes);
  if (it != cache_.end()) {
    out = std::move(it->second);
    cache_.erase(it);
    cached_ -= bytes;
  } else {
    CUresult r = vmm_.create(bytes, out);
    if (r != CUDA_SUCCESS) return r;
  }
  in_use_ += bytes;
  peak_ = std::max(peak_, in_use_);
  return CUDA_SUCCESS;
}

void StagingPool::give_back(UniquePhysicalMemory handle, size_t bytes) noexcept {
  in_use_ -= std::min(in_use_, bytes);
  try {
    cache_.emplace(bytes, std::move(handle));
    cached_ += bytes;
  } catch (...) {
    // handle released by its destructor
  }
}

size_t StagingPool::trim(size_t keep_bytes, size_t prefer_size) noexcept {
  size_t released = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (auto it = cache_.end(); cached_ > keep_bytes && it != cache_.begin();) {
      --it;  // largest first: frees the most per call
      if (pass == 0 && it->first == prefer_size) continue;
      cached_ -= it->first;
      released += it->first;
      it = cache_.erase(it);
    }
  }
  return released;
}

}  // namespace nz::rt
