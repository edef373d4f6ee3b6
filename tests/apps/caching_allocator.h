// caching_allocator.h: a device memory allocator that behaves like
// PyTorch's CUDA caching allocator, so that the driver sees the same
// pattern of segments a real framework produces:
//   - sizes are rounded up to 512 bytes, blocks are 512-byte aligned;
//   - requests <= 1 MiB come from 2 MiB segments (small pool),
//     requests of 1-10 MiB from 20 MiB segments (large pool), larger ones
//     get a segment of their own, rounded up to 2 MiB;
//   - freed blocks stay cached and are reused best-fit (smallest block that
//     fits, then lowest address); a block is split when the rest is worth
//     keeping (>= 512 B in the small pool, > 1 MiB in the large pool) and
//     merged with free neighbours of the same segment when freed;
//   - when the driver is out of memory, fully free cached segments are
//     released and the allocation retried once.
// So weights share segments with each other, and after reuse with
// activations. Not stream-aware: callers free a block only once no queued
// work can still touch it (minifw frees at synchronised step boundaries or
// on the stream that used the block). Thread-safe.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

namespace minifw {

// Where segments come from: cuMemAlloc/cuMemFree in minifw (or the program's
// own virtual memory, or stream-ordered pools: --alloc), a fake in tests.
struct SegmentSource {
  std::function<CUresult(CUdeviceptr*, size_t)> allocate;
  std::function<CUresult(CUdeviceptr)> release;
};

SegmentSource driver_segment_source();
// PyTorch's expandable segments: cuMemCreate/cuMemMap in one reservation.
SegmentSource vmm_segment_source();
// Stream-ordered memory (cuMemAllocAsync/cuMemFreeAsync on the legacy stream).
SegmentSource stream_ordered_segment_source();

struct AllocatorStats {
  uint64_t allocated_bytes = 0;       // in live blocks (rounded sizes)
  uint64_t peak_allocated_bytes = 0;
  uint64_t segment_bytes = 0;         // held from the driver now
  uint64_t peak_segment_bytes = 0;
  uint64_t segments_created = 0;
  uint64_t segments_released = 0;
  uint64_t cache_hits = 0;            // allocations served from cached blocks
};

class CachingAllocator {
 public:
  static constexpr size_t kAlignment = 512;
  static constexpr size_t kSmallRequestMax = 1u << 20;   // 1 MiB
  static constexpr size_t kSmallSegment = 2u << 20;      // 2 MiB
  static constexpr size_t kLargeSegment = 20u << 20;     // 20 MiB
  static constexpr size_t kLargeRequestMin = 10u << 20;  // own segment from here
  static constexpr size_t kHugeRounding = 2u << 20;

  enum class Status { ok, out_of_memory, driver_error };
  struct Result {
    Status status = Status::ok;
    CUdeviceptr ptr = 0;
    CUresult driver_result = CUDA_SUCCESS;  // when status != ok
  };

  explicit CachingAllocator(SegmentSource source);
  ~CachingAllocator();  // releases every segment (live blocks included)
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  Result allocate(size_t bytes);
  // Returns false if `ptr` is not a live block of this allocator.
  bool free(CUdeviceptr ptr);
  // Releases every fully free segment to the driver.
  CUresult empty_cache();

  AllocatorStats stats() const;
  static size_t round_size(size_t bytes);
  static size_t segment_size_for(size_t rounded_bytes);

 private:
  struct Block;
  struct BySizeThenAddress {
    bool operator()(const Block* a, const Block* b) const;
  };
  using FreeSet = std::set<Block*, BySizeThenAddress>;

  FreeSet& pool_for(size_t rounded_bytes);
  Block* take_cached(FreeSet& pool, size_t rounded_bytes);
  Block* new_segment(FreeSet& pool, size_t rounded_bytes, CUresult& result);
  void split(Block* block, size_t rounded_bytes);
  CUresult release_free_segments();

  mutable std::mutex mutex_;
  SegmentSource source_;
  FreeSet small_free_;
  FreeSet large_free_;
  std::map<CUdeviceptr, Block*> live_;
  std::vector<std::unique_ptr<Block>> blocks_;  // owner of every Block object
  AllocatorStats stats_;
};

}  // namespace minifw
