// staging_pool.h: physical memory that is mapped under compressed ranges
// while they are in use. A staged range gets ONE handle of its whole size, so
// staging costs one cuMemMap + one cuMemSetAccess per range whatever its
// length. Handles of evicted ranges are kept for reuse by the next range of
// the same size (layers of a model repeat sizes) until memory is needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>

#include "runtime/vmm_allocator.h"

namespace nz::rt {

class StagingPool {
 public:
  explicit StagingPool(VmmAllocator& vmm) : vmm_(vmm) {}
  // A handle of exactly `bytes`: a cached one or a new one.
  CUresult acquire(size_t bytes, UniquePhysicalMemory& out) noexcept;
  // Keeps the handle for reuse (it must be unmapped).
  void give_back(UniquePhysicalMemory handle, size_t bytes) noexcept;
  // The caller keeps the handle for good (its range became resident again).
  void detach(size_t bytes) noexcept { in_use_ -= bytes < in_use_ ? bytes : in_use_; }
  // Releases cached handles until at most `keep_bytes` stay cached, those of
  // `prefer_size` bytes last; returns bytes released.
  size_t trim(size_t keep_bytes, size_t prefer_size = 0) noexcept;
  bool has_cached(size_t bytes) const noexcept { return cache_.count(bytes) != 0; }

  size_t in_use_bytes() const noexcept { return in_use_; }
  size_t cached_bytes() const noexcept { return cached_; }
  size_t physical_bytes() const noexcept { return in_use_ + cached_; }
  size_t peak_bytes() const noexcept { return peak_; }

 private:
  VmmAllocator& vmm_;
  std::multimap<size_t, UniquePhysicalMemory> cache_;
  size_t in_use_ = 0;
  size_t cached_ = 0;
  size_t peak_ = 0;
};

}  // namespace nz::rt
