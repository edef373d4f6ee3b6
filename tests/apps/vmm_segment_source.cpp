// vmm_segment_source.cpp: the caching allocator's segments come from the
// program's own CUDA virtual memory, as PyTorch's do with
// PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (c10's ExpandableSegment):
//   - one large address reservation per pool (PyTorch: 9/8 of the device's
//     memory), made once; segments are carved from it, so they lie end to
//     end in VA, and a released segment's addresses are used again;
//   - physical memory in handles of the pool's granule (2 MiB small pool,
//     20 MiB large pool), each created with cuMemCreate, requested as
//     exportable to a file descriptor, mapped with cuMemMap, then one
//     cuMemSetAccess over the whole segment;
//   - a release unmaps and releases every handle and keeps the addresses.
// Nothing here is cuMemAlloc memory, so a runtime that serves cuMemAlloc
// (neuzip) sees only the driver calls above, copies and launches into
// memory it does not own.
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "caching_allocator.h"

namespace minifw {
namespace {

struct Reservation {
  CUdeviceptr base = 0;
  size_t bytes = 0;
  size_t granule = 0;  // handle size of this pool
  size_t cursor = 0;   // first never-used offset
  std::multimap<size_t, CUdeviceptr> released;  // size -> address, for reuse
};

struct Segment {
  size_t bytes = 0;
  Reservation* from = nullptr;
  std::vector<CUmemGenericAllocationHandle> handles;
};

class VmmSegments {
 public:
  ~VmmSegments() {
    // The allocator released every segment before this (it outlives none).
    for (Reservation* r : {&small_, &large_})
      if (r->base != 0) cuMemAddressFree(r->base, r->bytes);
  }

  CUresult allocate(CUdeviceptr* ptr, size_t bytes) {
    std::lock_guard lock(mu_);
    Reservation& pool = bytes <= CachingAllocator::kSmallSegment ? small_ : large_;
    if (pool.base == 0) {
      pool.granule = &pool == &small_ ? CachingAllocator::kSmallSegment : CachingAllocator::kLargeSegment;
      if (CUresult r = reserve(pool); r != CUDA_SUCCESS) return r;
    }
    CUdeviceptr va = 0;
    if (auto it = pool.released.find(bytes); it != pool.released.end()) {
      va = it->second;
      pool.released.erase(it);
    } else {
      if (pool.bytes - pool.cursor < bytes) return CUDA_ERROR_OUT_OF_MEMORY;
      va = pool.base + pool.cursor;
      pool.cursor += bytes;
    }
    Segment s{bytes, &pool, {}};
    CUresult r = map(va, s);
    if (r != CUDA_SUCCESS) {
      pool.released.emplace(bytes, va);
      return r;
    }
    segments_[va] = std::move(s);
    *ptr = va;
    return CUDA_SUCCESS;
  }

  CUresult release(CUdeviceptr va) {
    std::lock_guard lock(mu_);
    auto it = segments_.find(va);
    if (it == segments_.end()) return CUDA_ERROR_INVALID_VALUE;
    // PyTorch synchronises the segment's stream before it unmaps; the
    // caching allocator's callers free only blocks no queued work touches.
    CUresult r = unmap(va, it->second);
    it->second.from->released.emplace(it->second.bytes, va);
    segments_.erase(it);
    return r;
  }

 private:
  CUresult reserve(Reservation& pool) {
    size_t free = 0, total = 0;
    if (CUresult r = cuMemGetInfo(&free, &total); r != CUDA_SUCCESS) return r;
    const size_t want = total + total / 8;
    pool.bytes = (want + pool.granule - 1) / pool.granule * pool.granule;
    return cuMemAddressReserve(&pool.base, pool.bytes, 0, 0, 0);
  }

  static CUmemAllocationProp properties() {
    CUmemAllocationProp prop{};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    return prop;
  }

  // Handles of the pool's granule (the last one may be smaller: segments of
  // their own are rounded to 2 MiB), each mapped, then access for all.
  static CUresult map(CUdeviceptr va, Segment& s) {
    const CUmemAllocationProp prop = properties();
    CUresult r = CUDA_SUCCESS;
    for (size_t off = 0; off < s.bytes && r == CUDA_SUCCESS; off += s.from->granule) {
      const size_t piece = std::min(s.from->granule, s.bytes - off);
      CUmemGenericAllocationHandle h = 0;
      r = cuMemCreate(&h, piece, &prop, 0);
      if (r != CUDA_SUCCESS) break;
      r = cuMemMap(va + off, piece, 0, h, 0);
      if (r != CUDA_SUCCESS) {
        cuMemRelease(h);
        break;
      }
      s.handles.push_back(h);
    }
    if (r == CUDA_SUCCESS) {
      CUmemAccessDesc access{};
      access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      access.location.id = 0;
      access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
      r = cuMemSetAccess(va, s.bytes, &access, 1);
    }
    if (r != CUDA_SUCCESS) unmap(va, s);  // what was mapped goes back
    return r;
  }

  static CUresult unmap(CUdeviceptr va, Segment& s) {
    CUresult first = CUDA_SUCCESS;
    size_t off = 0;
    for (CUmemGenericAllocationHandle h : s.handles) {
      const size_t piece = std::min(s.from->granule, s.bytes - off);
      CUresult r = cuMemUnmap(va + off, piece);
      CUresult q = cuMemRelease(h);
      if (first == CUDA_SUCCESS) first = r != CUDA_SUCCESS ? r : q;
      off += piece;
    }
    s.handles.clear();
    return first;
  }

  std::mutex mu_;
  Reservation small_, large_;
  std::map<CUdeviceptr, Segment> segments_;
};

}  // namespace

SegmentSource vmm_segment_source() {
  auto segments = std::make_shared<VmmSegments>();
  return SegmentSource{
      [segments](CUdeviceptr* ptr, size_t bytes) { return segments->allocate(ptr, bytes); },
      [segments](CUdeviceptr ptr) { return segments->release(ptr); },
  };
}

}  // namespace minifw
