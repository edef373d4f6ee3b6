// transfer_spans.h: the device byte ranges a copy or memset touches, as the
// runtime wants them (hooks.h Span). Pure functions, unit-tested.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <vector>

#include "runtime/hooks.h"

namespace nz::shim {

// At most two spans per 2D/3D copy (source and destination).
struct SpanPair {
  rt::Span spans[2];
  size_t count = 0;
  bool host_to_device = false;  // the source is host memory and the destination device memory
};

// A memory type whose pointer may be device memory (device or unified addressing).
inline bool may_be_device(CUmemorytype t) noexcept {
  return t == CU_MEMORYTYPE_DEVICE || t == CU_MEMORYTYPE_UNIFIED;
}

// Bounding byte range of a pitched region: rows of `width` bytes, `pitch` apart.
size_t pitched_extent(size_t pitch, size_t width, size_t height) noexcept;
// Bounding byte range of a 3D region: `depth` slices of `height` rows.
size_t volume_extent(size_t pitch, size_t slice_height, size_t width, size_t height,
                     size_t depth) noexcept;

SpanPair spans_of(const CUDA_MEMCPY2D& c) noexcept;
SpanPair spans_of(const CUDA_MEMCPY3D& c) noexcept;
SpanPair spans_of(const CUDA_MEMCPY3D_PEER& c) noexcept;

// The words stream memory operations write (write-value) or read (wait-value),
// appended to `out` (flushes and barriers touch no memory). May throw
// std::bad_alloc.
void append_memop_spans(const CUstreamBatchMemOpParams* ops, size_t count, std::vector<rt::Span>& out);

// One operation of cuMemcpy3DBatchAsync: the device byte range of each
// pointer operand (arrays are not cuMemAlloc memory). `element_bytes` is the
// size of an element of the copy: 1 between pointers, the array's element
// size between a pointer and an array.
SpanPair spans_of(const CUDA_MEMCPY3D_BATCH_OP& op, size_t element_bytes) noexcept;

// Bytes from globalAddress to the last element a TMA descriptor can address.
size_t tensor_map_extent(CUtensorMapDataType type, cuuint32_t rank, const cuuint64_t* global_dim,
                         const cuuint64_t* global_strides) noexcept;

}  // namespace nz::shim
