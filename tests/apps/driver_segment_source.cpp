// driver_segment_source.cpp: the caching allocator's segments come from
// cuMemAlloc / cuMemFree, exactly as PyTorch's do (without expandable
// segments), or from cuMemAllocAsync / cuMemFreeAsync.
#include "caching_allocator.h"

namespace minifw {

SegmentSource driver_segment_source() {
  return SegmentSource{
      [](CUdeviceptr* ptr, size_t bytes) { return cuMemAlloc(ptr, bytes); },
      [](CUdeviceptr ptr) { return cuMemFree(ptr); },
  };
}

// PyTorch's backend:cudaMallocAsync has no caching allocator of its own and
// asks the driver's pool for every tensor; here the pool serves the caching
// allocator's segments, which is enough to put the weights in stream-ordered
// memory. The legacy stream orders them after all earlier work (a free
// comes only once no queued work touches the segment, as for cuMemFree).
SegmentSource stream_ordered_segment_source() {
  return SegmentSource{
      [](CUdeviceptr* ptr, size_t bytes) { return cuMemAllocAsync(ptr, bytes, CU_STREAM_LEGACY); },
      [](CUdeviceptr ptr) { return cuMemFreeAsync(ptr, CU_STREAM_LEGACY); },
  };
}

}  // namespace minifw
