// transfer_spans.cpp: byte ranges of 2D/3D copies and TMA descriptors.
#include "transfer_spans.h"

namespace nz::shim {

size_t pitched_extent(size_t pitch, size_t width, size_t height) noexcept {
  if (width == 0 || height == 0) return 0;
  return (height - 1) * pitch + width;
}

size_t volume_extent(size_t pitch, size_t slice_height, size_t width, size_t height,
                     size_t depth) noexcept {
  if (width == 0 || height == 0) return 0;
  if (depth == 0) depth = 1;
  // slice_height may be 0 when depth == 1 (cuda.h); rows then follow each other.
  const size_t rows_per_slice = slice_height ? slice_height : height;
  return ((depth - 1) * rows_per_slice + (height - 1)) * pitch + width;
}

namespace {

template <typename Copy>
SpanPair spans_3d(const Copy& c) noexcept {
  SpanPair out;
  if (may_be_device(c.srcMemoryType)) {
    const size_t rows = c.srcHeight ? c.srcHeight : c.Height;
    const CUdeviceptr start = c.srcDevice + (c.srcZ * rows + c.srcY) * c.srcPitch + c.srcXInBytes;
    out.spans[out.count++] = {start, volume_extent(c.srcPitch, c.srcHeight, c.WidthInBytes, c.Height,
                                                   c.Depth),
                              rt::Access::kRead};
  }
  if (may_be_device(c.dstMemoryType)) {
    const size_t rows = c.dstHeight ? c.dstHeight : c.Height;
    const CUdeviceptr start = c.dstDevice + (c.dstZ * rows + c.dstY) * c.dstPitch + c.dstXInBytes;
    out.spans[out.count++] = {start, volume_extent(c.dstPitch, c.dstHeight, c.WidthInBytes, c.Height,
                                                   c.Depth),
                              rt::Access::kWrite};
  }
  out.host_to_device = c.srcMemoryType == CU_MEMORYTYPE_HOST && may_be_device(c.dstMemoryType);
  return out;
}

}  // namespace

SpanPair spans_of(const CUDA_MEMCPY2D& c) noexcept {
  SpanPair out;
  if (may_be_device(c.srcMemoryType))
    out.spans[out.count++] = {c.srcDevice + c.srcY * c.srcPitch + c.srcXInBytes,
                              pitched_extent(c.srcPitch, c.WidthInBytes, c.Height), rt::Access::kRead};
  if (may_be_device(c.dstMemoryType))
    out.spans[out.count++] = {c.dstDevice + c.dstY * c.dstPitch + c.dstXInBytes,
                              pitched_extent(c.dstPitch, c.WidthInBytes, c.Height), rt::Access::kWrite};
  out.host_to_device = c.srcMemoryType == CU_MEMORYTYPE_HOST && may_be_device(c.dstMemoryType);
  return out;
}

SpanPair spans_of(const CUDA_MEMCPY3D& c) noexcept { return spans_3d(c); }
SpanPair spans_of(const CUDA_MEMCPY3D_PEER& c) noexcept { return spans_3d(c); }

void append_memop_spans(const CUstreamBatchMemOpParams* ops, size_t count, std::vector<rt::Span>& out) {
  for (size_t i = 0; i < count; ++i) {
    switch (ops[i].operation) {
      case CU_STREAM_MEM_OP_WRITE_VALUE_32: out.push_back({ops[i].writeValue.address, 4, rt::Access::kWrite}); break;
      case CU_STREAM_MEM_OP_WRITE_VALUE_64: out.push_back({ops[i].writeValue.address, 8, rt::Access::kWrite}); break;
      case CU_STREAM_MEM_OP_WAIT_VALUE_32: out.push_back({ops[i].waitValue.address, 4, rt::Access::kRead}); break;
      case CU_STREAM_MEM_OP_WAIT_VALUE_64: out.push_back({ops[i].waitValue.address, 8, rt::Access::kRead}); break;
      default: break;
    }
  }
}

SpanPair spans_of(const CUDA_MEMCPY3D_BATCH_OP& op, size_t element_bytes) noexcept {
  SpanPair out;
  const CUextent3D& e = op.extent;
  auto side = [&](const CUmemcpy3DOperand& o, rt::Access access) {
    if (o.type != CU_MEMCPY_OPERAND_TYPE_POINTER) return;
    // rowLength and layerHeight are in elements; 0 means packed to the extent.
    const size_t row = o.op.ptr.rowLength ? o.op.ptr.rowLength : e.width;
    const size_t layer = o.op.ptr.layerHeight ? o.op.ptr.layerHeight : e.height;
    const size_t bytes = volume_extent(row * element_bytes, layer, e.width * element_bytes, e.height, e.depth);
    out.spans[out.count++] = {o.op.ptr.ptr, bytes, access};
  };
  side(op.src, rt::Access::kRead);
  side(op.dst, rt::Access::kWrite);
  return out;
}

namespace {

// Bytes per element; packed sub-byte types are over-estimated as one byte per
// element (a conservative range is harmless, a short one is not).
size_t tensor_element_bytes(CUtensorMapDataType type) noexcept {
  switch (type) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16:
      return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32:
    case CU_TENSOR_MAP_DATA_TYPE_INT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32:
    case CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ:
      return 4;
    case CU_TENSOR_MAP_DATA_TYPE_UINT64:
    case CU_TENSOR_MAP_DATA_TYPE_INT64:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT64:
      return 8;
    default:
      return 1;
  }
}

}  // namespace

size_t tensor_map_extent(CUtensorMapDataType type, cuuint32_t rank, const cuuint64_t* global_dim,
                         const cuuint64_t* global_strides) noexcept {
  if (rank == 0 || !global_dim) return 0;
  const size_t elem = tensor_element_bytes(type);
  for (cuuint32_t i = 0; i < rank; ++i)
    if (global_dim[i] == 0) return 0;
  // Dimension 0 is contiguous; globalStrides[i-1] is the byte stride of dimension i.
  size_t last = (global_dim[0] - 1) * elem;
  for (cuuint32_t i = 1; i < rank; ++i) {
    if (!global_strides) break;
    last += (global_dim[i] - 1) * global_strides[i - 1];
  }
  return last + elem;
}

}  // namespace nz::shim
