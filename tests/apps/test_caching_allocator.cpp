// test_caching_allocator.cpp: the allocator's PyTorch-like policy, checked
// against a fake segment source (no driver needed).
#include <gtest/gtest.h>

#include <map>

#include "caching_allocator.h"

namespace minifw {
namespace {

constexpr size_t kMiB = 1u << 20;

// Hands out addresses from a counter, with an optional capacity.
struct FakeDevice {
  size_t capacity = SIZE_MAX;
  size_t used = 0;
  CUdeviceptr next = 0x10000000;
  std::map<CUdeviceptr, size_t> segments;

  SegmentSource source() {
    return SegmentSource{
        [this](CUdeviceptr* ptr, size_t bytes) {
          if (used + bytes > capacity) return CUDA_ERROR_OUT_OF_MEMORY;
          *ptr = next;
          next += bytes + 64 * kMiB;  // gaps: segments are never adjacent
          used += bytes;
          segments[*ptr] = bytes;
          return CUDA_SUCCESS;
        },
        [this](CUdeviceptr ptr) {
          auto it = segments.find(ptr);
          if (it == segments.end()) return CUDA_ERROR_INVALID_VALUE;
          used -= it->second;
          segments.erase(it);
          return CUDA_SUCCESS;
        },
    };
  }
};

CUdeviceptr must_allocate(CachingAllocator& a, size_t bytes) {
  auto r = a.allocate(bytes);
  EXPECT_EQ(r.status, CachingAllocator::Status::ok);
  return r.ptr;
}

TEST(CachingAllocator, SegmentSizesFollowPyTorch) {
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::segment_size_for(512), 2 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size_for(kMiB), 2 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size_for(kMiB + 512), 20 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size_for(10 * kMiB - 512), 20 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size_for(10 * kMiB), 10 * kMiB);
  EXPECT_EQ(CachingAllocator::segment_size_for(11 * kMiB + 512), 12 * kMiB);
}

TEST(CachingAllocator, SmallRequestsShareASegment) {
  FakeDevice dev;
  CachingAllocator a(dev.source());
  CUdeviceptr p1 = must_allocate(a, 1000);
  CUdeviceptr p2 = must_allocate(a, 3000);
  EXPECT_EQ(dev.segments.size(), 1u);
  EXPECT_EQ(p2, p1 + 1024);  // carved right after, 512-aligned
  EXPECT_EQ(p2 % 512, p1 % 512);
  EXPECT_EQ(a.stats().segment_bytes, 2 * kMiB);
}

TEST(CachingAllocator, PoolsAreSeparate) {
  FakeDevice dev;
  CachingAllocator a(dev.source());
  must_allocate(a, 4096);           // small pool: 2 MiB segment
  must_allocate(a, 3 * kMiB);       // large pool: 20 MiB segment
  must_allocate(a, 4 * kMiB);       // same 20 MiB segment
  must_allocate(a, 15 * kMiB + 1);  // own segment, 16 MiB
  EXPECT_EQ(dev.segments.size(), 3u);
  EXPECT_EQ(a.stats().segment_bytes, (2 + 20 + 16) * kMiB);
}

TEST(CachingAllocator, FreedBlocksAreReusedBestFit) {
  FakeDevice dev;
  CachingAllocator a(dev.source());
  CUdeviceptr big = must_allocate(a, 64 * 1024);
  CUdeviceptr guard1 = must_allocate(a, 512);
  CUdeviceptr small = must_allocate(a, 8 * 1024);
  must_allocate(a, 512);  // keeps `small` from merging with the tail
  ASSERT_TRUE(a.free(big));
  ASSERT_TRUE(a.free(small));
  // 6 KiB fits both freed blocks; best fit takes the 8 KiB one.
  EXPECT_EQ(must_allocate(a, 6 * 1024), small);
  EXPECT_EQ(dev.segments.size(), 1u);
  EXPECT_GE(a.stats().cache_hits, 1u);
  (void)guard1;
}

TEST(CachingAllocator, FreeMergesNeighbours) {
  FakeDevice dev;
  CachingAllocator a(dev.source());
  CUdeviceptr p1 = must_allocate(a, 512 * 1024);
  CUdeviceptr p2 = must_allocate(a, 512 * 1024);
  CUdeviceptr p3 = must_allocate(a, 512 * 1024);
  ASSERT_TRUE(a.free(p1));
  ASSERT_TRUE(a.free(p3));
  ASSERT_TRUE(a.free(p2));
  // Whole segment free again: a 1 MiB request fits at its start.
  EXPECT_EQ(must_allocate(a, kMiB), p1);
  EXPECT_EQ(dev.segments.size(), 1u);
}

TEST(CachingAllocator, LargePoolKeepsOnlyRemaindersAboveOneMiB) {
  FakeDevice dev;
  CachingAllocator a(dev.source());
  CUdeviceptr p = must_allocate(a, 19 * kMiB + 512 * 1024);  // rest 512 KiB: not split off
  CUdeviceptr q = must_allocate(a, 2 * kMiB);
  EXPECT_EQ(dev.segments.size(), 2u);
  EXPECT_NE(q, p + 19 * kMiB + 512 * 1024);
}

TEST(CachingAllocator, OutOfMemoryReleasesCacheThenFails) {
  FakeDevice dev;
  dev.capacity = 22 * kMiB;
  CachingAllocator a(dev.source());
  CUdeviceptr small = must_allocate(a, 4096);
  ASSERT_TRUE(a.free(small));                 // cached 2 MiB segment
  must_allocate(a, 5 * kMiB);                 // needs 20 MiB: fits next to the cache
  auto r = a.allocate(16 * kMiB);  // more than the 15 MiB left in the segment: cache released, still too big
  EXPECT_EQ(r.status, CachingAllocator::Status::out_of_memory);
  EXPECT_EQ(a.stats().segments_released, 1u);
  EXPECT_EQ(dev.used, 20 * kMiB);
}

TEST(CachingAllocator, RejectsUnknownPointer) {
  FakeDevice dev;
  CachingAllocator a(dev.source());
  EXPECT_FALSE(a.free(0x1234));
  CUdeviceptr p = must_allocate(a, 100);
  EXPECT_TRUE(a.free(p));
  EXPECT_FALSE(a.free(p));  // double free is refused
}

TEST(CachingAllocator, DestructorReleasesAllSegments) {
  FakeDevice dev;
  {
    CachingAllocator a(dev.source());
    must_allocate(a, 100);
    must_allocate(a, 3 * kMiB);
    must_allocate(a, 30 * kMiB);
  }
  EXPECT_TRUE(dev.segments.empty());
  EXPECT_EQ(dev.used, 0u);
}

}  // namespace
}  // namespace minifw
