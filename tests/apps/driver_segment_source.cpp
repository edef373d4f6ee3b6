// driver_segment_source.cpp: the caching allocator's segments come from
// cuMemAlloc / cuMemFree, exactly as PyTorch's do (without expandable segments).
#include "caching_allocator.h"

namespace minifw {

SegmentSource driver_segment_source() {
  return SegmentSource{
      [](CUdeviceptr* ptr, size_t bytes) { return cuMemAlloc(ptr, bytes); },
      [](CUdeviceptr ptr) { return cuMemFree(ptr); },
  };
}

}  // namespace minifw
