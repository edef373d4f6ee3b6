// Copies and memsets. Every transfer is a work item on a stream, run under
// the fault guard, so a copy touching unmapped device memory or an invalid
// host pointer aborts with CUDA_ERROR_ILLEGAL_ADDRESS. Synchronous forms queue
// on the default stream and wait. As on a GPU, an async copy from pageable
// host memory snapshots the source before returning, and an async copy to
// pageable memory completes before returning.
#include <cstring>
#include <memory>
#include <vector>

#include "sim_fault.h"
#include "sim_graph_nodes.h"
#include "sim_memory.h"
#include "sim_stream.h"
#include "sim_va.h"

using namespace nzsim;

namespace {

struct Plane {  // a strided 3D block of bytes
  uintptr_t dst, src;
  size_t width, height, depth;
  size_t dst_pitch, src_pitch;
  size_t dst_slice, src_slice;  // bytes between consecutive depth slices
};

// What a memcpy node's getter answers for a copy of `p` (a capture records it).
std::shared_ptr<const NodeParams> copy_node_params(const Plane& p) {
  auto n = std::make_shared<NodeParams>();
  n->type = CU_GRAPH_NODE_TYPE_MEMCPY;
  n->has_params = true;
  CUDA_MEMCPY3D& c = n->copy;
  c.srcMemoryType = c.dstMemoryType = CU_MEMORYTYPE_UNIFIED;  // device or host, by address
  c.srcDevice = p.src;
  c.dstDevice = p.dst;
  c.srcPitch = p.src_pitch;
  c.dstPitch = p.dst_pitch;
  c.srcHeight = p.src_pitch ? p.src_slice / p.src_pitch : 0;
  c.dstHeight = p.dst_pitch ? p.dst_slice / p.dst_pitch : 0;
  c.WidthInBytes = p.width;
  c.Height = p.height;
  c.Depth = p.depth;
  return n;
}

void copy_plane(const Plane& p) {
  for (size_t z = 0; z < p.depth; ++z)
    for (size_t y = 0; y < p.height; ++y)
      std::memmove(reinterpret_cast<void*>(p.dst + z * p.dst_slice + y * p.dst_pitch),
                   reinterpret_cast<const void*>(p.src + z * p.src_slice + y * p.src_pitch), p.width);
}

CUresult copy_snapshot_body(void* arg) {
  auto* pair = static_cast<std::pair<std::vector<uint8_t>*, const Plane*>*>(arg);
  const Plane& p = *pair->second;
  pair->first->resize(p.width * p.height * p.depth);
  Plane packed = p;
  packed.dst = reinterpret_cast<uintptr_t>(pair->first->data());
  packed.dst_pitch = p.width;
  packed.dst_slice = p.width * p.height;
  copy_plane(packed);
  return CUDA_SUCCESS;
}

// A plain copy run in `ctx` to or from another device's virtual memory that
// device was not granted: refused at the call. The driver refuses it for
// stream-ordered (pool) memory, whose copies between devices must be
// cuMemcpyPeer*, and a copy engine without a mapping of the pages cannot do
// better for cuMemCreate memory. Peer copies name both contexts and pass.
bool refused_across_devices(Context* ctx, const Plane& p) {
  if (config().devices <= 1) return false;
  for (uintptr_t a : {p.dst, p.src}) {
    if (!va_contains(a)) continue;
    RangeInfo r;
    if (!find_vmm_mapping(a, &r) || vmm_reachable_from(a, ctx->device, nullptr)) continue;
    log_error("memcpy in a context of device {} to or from {:#x}: virtual memory not granted to it (use cuMemcpyPeer)",
              static_cast<int>(ctx->device), a);
    return true;
  }
  return false;
}

// Queues the copy; `sync` waits for it. `stage_source`: read the source now.
// `peer`: cuMemcpyPeer*, which names the contexts of both sides.
CUresult enqueue_copy(CUstream h, Plane plane, bool sync, bool stage_source, bool peer = false) {
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (CUresult r = s->ctx->sticky.load(); r != CUDA_SUCCESS) return r;
  if (!peer && refused_across_devices(s->ctx, plane)) return CUDA_ERROR_INVALID_VALUE;
  if (plane.width == 0 || plane.height == 0 || plane.depth == 0) return CUDA_SUCCESS;
  WorkItem item;
  item.kind = ItemKind::copy;
  item.label = "memcpy";
  item.node = copy_node_params(plane);
  if (stage_source && !sync) {
    auto staged = std::make_shared<std::vector<uint8_t>>();
    std::pair<std::vector<uint8_t>*, const Plane*> arg{staged.get(), &plane};
    GuardOutcome out = run_guarded(true, copy_snapshot_body, &arg);
    if (out.faulted) {
      log_error("illegal address {:#x} in memcpy (host source) on stream {}", out.address, static_cast<void*>(s));
      return CUDA_ERROR_INVALID_VALUE;
    }
    Plane from_stage = plane;
    from_stage.src = reinterpret_cast<uintptr_t>(staged->data());
    from_stage.src_pitch = plane.width;
    from_stage.src_slice = plane.width * plane.height;
    item.body = [staged, from_stage] {
      copy_plane(from_stage);
      return CUDA_SUCCESS;
    };
  } else {
    item.body = [plane] {
      copy_plane(plane);
      return CUDA_SUCCESS;
    };
  }
  uint64_t seq = submit(s, std::move(item));
  if (sync && seq) {
    wait_until(s, seq);
    return s->ctx->sticky.load();
  }
  return CUDA_SUCCESS;
}

Plane linear(uintptr_t dst, uintptr_t src, size_t bytes) { return Plane{dst, src, bytes, 1, 1, 0, 0, 0, 0}; }

bool pageable(uintptr_t addr) { return kind_of(addr) == MemKind::pageable_host; }

CUresult copy_1d(uintptr_t dst, uintptr_t src, size_t bytes, CUstream h, bool async, bool peer = false) {
  bool sync = !async || pageable(dst);
  return enqueue_copy(h, linear(dst, src, bytes), sync, pageable(src), peer);
}

template <typename T>
std::function<CUresult()> memset_body(uintptr_t dst, size_t pitch, T value, size_t width, size_t height) {
  return [=] {
    for (size_t y = 0; y < height; ++y) {
      T* row = reinterpret_cast<T*>(dst + y * pitch);
      if constexpr (sizeof(T) == 1) {
        std::memset(row, value, width);
      } else {
        for (size_t x = 0; x < width; ++x) row[x] = value;
      }
    }
    return CUDA_SUCCESS;
  };
}

template <typename T>
CUresult enqueue_memset(CUstream h, uintptr_t dst, size_t pitch, T value, size_t width, size_t height, bool sync) {
  if (dst % sizeof(T) != 0 || (height > 1 && pitch % sizeof(T) != 0)) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (CUresult r = s->ctx->sticky.load(); r != CUDA_SUCCESS) return r;
  if (width == 0 || height == 0) return CUDA_SUCCESS;
  WorkItem item;
  item.kind = ItemKind::memset;
  item.label = "memset";
  item.body = memset_body(dst, pitch, value, width, height);
  auto node = std::make_shared<NodeParams>();
  node->type = CU_GRAPH_NODE_TYPE_MEMSET;
  node->has_params = true;
  node->memset.dst = dst;
  node->memset.pitch = pitch;
  node->memset.value = value;
  node->memset.elementSize = sizeof(T);
  node->memset.width = width;
  node->memset.height = height;
  item.node = std::move(node);
  uint64_t seq = submit(s, std::move(item));
  if (sync && seq) {
    wait_until(s, seq);
    return s->ctx->sticky.load();
  }
  return CUDA_SUCCESS;
}

uintptr_t side_address(CUmemorytype type, const void* host, CUdeviceptr dev) {
  return type == CU_MEMORYTYPE_HOST ? reinterpret_cast<uintptr_t>(host)
         : type == CU_MEMORYTYPE_UNIFIED && dev == 0 ? reinterpret_cast<uintptr_t>(host)
                                                      : static_cast<uintptr_t>(dev);
}

// The strided block a 3-D copy moves (arrays are not simulated).
CUresult plane_of(const CUDA_MEMCPY3D* p, Plane& out) {
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  if (p->srcMemoryType == CU_MEMORYTYPE_ARRAY || p->dstMemoryType == CU_MEMORYTYPE_ARRAY) return CUDA_ERROR_NOT_SUPPORTED;
  size_t src_pitch = p->srcPitch ? p->srcPitch : p->WidthInBytes;
  size_t dst_pitch = p->dstPitch ? p->dstPitch : p->WidthInBytes;
  if (src_pitch < p->WidthInBytes + p->srcXInBytes || dst_pitch < p->WidthInBytes + p->dstXInBytes) {
    if (p->Height > 1 || p->Depth > 1) return CUDA_ERROR_INVALID_VALUE;
  }
  size_t src_height = p->srcHeight ? p->srcHeight : p->Height;
  size_t dst_height = p->dstHeight ? p->dstHeight : p->Height;
  uintptr_t src = side_address(p->srcMemoryType, p->srcHost, p->srcDevice) + p->srcXInBytes +
                  (p->srcY + p->srcZ * src_height) * src_pitch;
  uintptr_t dst = side_address(p->dstMemoryType, p->dstHost, p->dstDevice) + p->dstXInBytes +
                  (p->dstY + p->dstZ * dst_height) * dst_pitch;
  out = Plane{dst, src, p->WidthInBytes, p->Height, p->Depth, dst_pitch, src_pitch,
              dst_pitch * dst_height, src_pitch * src_height};
  return CUDA_SUCCESS;
}

CUresult copy_3d(const CUDA_MEMCPY3D* p, CUstream h, bool async) {
  Plane plane;
  if (CUresult r = plane_of(p, plane); r != CUDA_SUCCESS) return r;
  bool sync = !async || pageable(plane.dst);
  return enqueue_copy(h, plane, sync, pageable(plane.src));
}

CUresult copy_2d(const CUDA_MEMCPY2D* p, CUstream h, bool async) {
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  CUDA_MEMCPY3D q{};
  q.srcXInBytes = p->srcXInBytes;
  q.srcY = p->srcY;
  q.srcMemoryType = p->srcMemoryType;
  q.srcHost = p->srcHost;
  q.srcDevice = p->srcDevice;
  q.srcArray = p->srcArray;
  q.srcPitch = p->srcPitch;
  q.dstXInBytes = p->dstXInBytes;
  q.dstY = p->dstY;
  q.dstMemoryType = p->dstMemoryType;
  q.dstHost = p->dstHost;
  q.dstDevice = p->dstDevice;
  q.dstArray = p->dstArray;
  q.dstPitch = p->dstPitch;
  q.WidthInBytes = p->WidthInBytes;
  q.Height = p->Height;
  q.Depth = 1;
  return copy_3d(&q, h, async);
}

}  // namespace

namespace nzsim {

CUresult copy_node_item(const CUDA_MEMCPY3D* p, WorkItem& out) {
  Plane plane;
  if (CUresult r = plane_of(p, plane); r != CUDA_SUCCESS) return r;
  out.kind = ItemKind::copy;
  out.label = "memcpy";
  out.body = [plane] {
    copy_plane(plane);
    return CUDA_SUCCESS;
  };
  return CUDA_SUCCESS;
}

CUresult memset_node_item(const CUDA_MEMSET_NODE_PARAMS* p, WorkItem& out) {
  if (!p || p->width == 0 || p->height == 0) return CUDA_ERROR_INVALID_VALUE;
  if (p->elementSize != 1 && p->elementSize != 2 && p->elementSize != 4) return CUDA_ERROR_INVALID_VALUE;
  const uintptr_t dst = static_cast<uintptr_t>(p->dst);
  const size_t pitch = p->height > 1 ? p->pitch : p->width * p->elementSize;
  if (dst % p->elementSize != 0 || pitch % p->elementSize != 0) return CUDA_ERROR_INVALID_VALUE;
  switch (p->elementSize) {
    case 1: out.body = memset_body<uint8_t>(dst, pitch, static_cast<uint8_t>(p->value), p->width, p->height); break;
    case 2: out.body = memset_body<uint16_t>(dst, pitch, static_cast<uint16_t>(p->value), p->width, p->height); break;
    case 4: out.body = memset_body<uint32_t>(dst, pitch, p->value, p->width, p->height); break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  out.kind = ItemKind::memset;
  out.label = "memset";
  return CUDA_SUCCESS;
}

}  // namespace nzsim

#define NZ_SYNC_STREAM nullptr  // the default stream (legacy, or per-thread via _ptds)

extern "C" {

CUresult CUDAAPI cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  NZ_REQUIRE_INIT();
  return copy_1d(dst, src, n, NZ_SYNC_STREAM, false);
}
CUresult CUDAAPI cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h) {
  NZ_REQUIRE_INIT();
  return copy_1d(dst, src, n, h, true);
}
CUresult CUDAAPI cuMemcpyHtoD(CUdeviceptr dst, const void* src, size_t n) {
  NZ_REQUIRE_INIT();
  return copy_1d(dst, reinterpret_cast<uintptr_t>(src), n, NZ_SYNC_STREAM, false);
}
CUresult CUDAAPI cuMemcpyHtoDAsync(CUdeviceptr dst, const void* src, size_t n, CUstream h) {
  NZ_REQUIRE_INIT();
  return copy_1d(dst, reinterpret_cast<uintptr_t>(src), n, h, true);
}
CUresult CUDAAPI cuMemcpyDtoH(void* dst, CUdeviceptr src, size_t n) {
  NZ_REQUIRE_INIT();
  return copy_1d(reinterpret_cast<uintptr_t>(dst), src, n, NZ_SYNC_STREAM, false);
}
CUresult CUDAAPI cuMemcpyDtoHAsync(void* dst, CUdeviceptr src, size_t n, CUstream h) {
  NZ_REQUIRE_INIT();
  return copy_1d(reinterpret_cast<uintptr_t>(dst), src, n, h, true);
}
CUresult CUDAAPI cuMemcpyDtoD(CUdeviceptr dst, CUdeviceptr src, size_t n) {
  NZ_REQUIRE_INIT();
  return copy_1d(dst, src, n, NZ_SYNC_STREAM, false);
}
CUresult CUDAAPI cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h) {
  NZ_REQUIRE_INIT();
  return copy_1d(dst, src, n, h, true);
}
CUresult CUDAAPI cuMemcpyPeer(CUdeviceptr dst, CUcontext, CUdeviceptr src, CUcontext, size_t n) {
  NZ_REQUIRE_INIT();
  return copy_1d(dst, src, n, NZ_SYNC_STREAM, false, true);
}
CUresult CUDAAPI cuMemcpyPeerAsync(CUdeviceptr dst, CUcontext, CUdeviceptr src, CUcontext, size_t n, CUstream h) {
  NZ_REQUIRE_INIT();
  return copy_1d(dst, src, n, h, true, true);
}
CUresult CUDAAPI cuMemcpy2D(const CUDA_MEMCPY2D* p) {
  NZ_REQUIRE_INIT();
  return copy_2d(p, NZ_SYNC_STREAM, false);
}
CUresult CUDAAPI cuMemcpy2DUnaligned(const CUDA_MEMCPY2D* p) {
  NZ_REQUIRE_INIT();
  return copy_2d(p, NZ_SYNC_STREAM, false);
}
CUresult CUDAAPI cuMemcpy2DAsync(const CUDA_MEMCPY2D* p, CUstream h) {
  NZ_REQUIRE_INIT();
  return copy_2d(p, h, true);
}
CUresult CUDAAPI cuMemcpy3D(const CUDA_MEMCPY3D* p) {
  NZ_REQUIRE_INIT();
  return copy_3d(p, NZ_SYNC_STREAM, false);
}
CUresult CUDAAPI cuMemcpy3DAsync(const CUDA_MEMCPY3D* p, CUstream h) {
  NZ_REQUIRE_INIT();
  return copy_3d(p, h, true);
}

CUresult CUDAAPI cuMemsetD8(CUdeviceptr d, unsigned char v, size_t n) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint8_t>(NZ_SYNC_STREAM, d, n, v, n, 1, true);
}
CUresult CUDAAPI cuMemsetD16(CUdeviceptr d, unsigned short v, size_t n) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint16_t>(NZ_SYNC_STREAM, d, n * 2, v, n, 1, true);
}
CUresult CUDAAPI cuMemsetD32(CUdeviceptr d, unsigned int v, size_t n) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint32_t>(NZ_SYNC_STREAM, d, n * 4, v, n, 1, true);
}
CUresult CUDAAPI cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream h) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint8_t>(h, d, n, v, n, 1, false);
}
CUresult CUDAAPI cuMemsetD16Async(CUdeviceptr d, unsigned short v, size_t n, CUstream h) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint16_t>(h, d, n * 2, v, n, 1, false);
}
CUresult CUDAAPI cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream h) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint32_t>(h, d, n * 4, v, n, 1, false);
}
CUresult CUDAAPI cuMemsetD2D8(CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint8_t>(NZ_SYNC_STREAM, d, pitch, v, w, h, true);
}
CUresult CUDAAPI cuMemsetD2D16(CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint16_t>(NZ_SYNC_STREAM, d, pitch, v, w, h, true);
}
CUresult CUDAAPI cuMemsetD2D32(CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint32_t>(NZ_SYNC_STREAM, d, pitch, v, w, h, true);
}
CUresult CUDAAPI cuMemsetD2D8Async(CUdeviceptr d, size_t pitch, unsigned char v, size_t w, size_t h, CUstream s) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint8_t>(s, d, pitch, v, w, h, false);
}
CUresult CUDAAPI cuMemsetD2D16Async(CUdeviceptr d, size_t pitch, unsigned short v, size_t w, size_t h, CUstream s) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint16_t>(s, d, pitch, v, w, h, false);
}
CUresult CUDAAPI cuMemsetD2D32Async(CUdeviceptr d, size_t pitch, unsigned int v, size_t w, size_t h, CUstream s) {
  NZ_REQUIRE_INIT();
  return enqueue_memset<uint32_t>(s, d, pitch, v, w, h, false);
}

}  // extern "C"

extern "C" {
// cuMemcpyBatchAsync (CUDA 13 ABI): the copies in order on the stream.
CUresult CUDAAPI cuMemcpyBatchAsync_v2(CUdeviceptr* dsts, CUdeviceptr* srcs, size_t* sizes, size_t count,
                                       CUmemcpyAttributes*, size_t*, size_t, CUstream h) {
  NZ_REQUIRE_INIT();
  if (count > 0 && (dsts == nullptr || srcs == nullptr || sizes == nullptr)) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < count; ++i) {
    if (CUresult r = cuMemcpyAsync(dsts[i], srcs[i], sizes[i], h); r != CUDA_SUCCESS) return r;
  }
  return CUDA_SUCCESS;
}

// cuMemcpy3DBatchAsync (CUDA 13 ABI): pointer operands only (arrays are not
// simulated). Every operation is checked before any is queued, as the
// driver refuses a malformed list whole; extents are in bytes for
// pointer-to-pointer copies (element size 1).
CUresult CUDAAPI cuMemcpy3DBatchAsync_v2(size_t count, CUDA_MEMCPY3D_BATCH_OP* ops, unsigned long long flags,
                                         CUstream h) {
  NZ_REQUIRE_INIT();
  if ((count > 0 && ops == nullptr) || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  std::vector<CUDA_MEMCPY3D> copies(count);
  for (size_t i = 0; i < count; ++i) {
    const CUDA_MEMCPY3D_BATCH_OP& op = ops[i];
    const CUextent3D& e = op.extent;
    if (e.width == 0 || e.height == 0 || e.depth == 0) return CUDA_ERROR_INVALID_VALUE;
    if (op.srcAccessOrder == CU_MEMCPY_SRC_ACCESS_ORDER_INVALID || op.srcAccessOrder >= CU_MEMCPY_SRC_ACCESS_ORDER_MAX)
      return CUDA_ERROR_INVALID_VALUE;
    if (op.src.type != CU_MEMCPY_OPERAND_TYPE_POINTER || op.dst.type != CU_MEMCPY_OPERAND_TYPE_POINTER)
      return op.src.type == CU_MEMCPY_OPERAND_TYPE_ARRAY || op.dst.type == CU_MEMCPY_OPERAND_TYPE_ARRAY
                 ? CUDA_ERROR_NOT_SUPPORTED
                 : CUDA_ERROR_INVALID_VALUE;
    for (const CUmemcpy3DOperand* side : {&op.src, &op.dst}) {
      const auto& p = side->op.ptr;
      if ((p.rowLength != 0 && p.rowLength < e.width) || (p.layerHeight != 0 && p.layerHeight < e.height))
        return CUDA_ERROR_INVALID_VALUE;
    }
    CUDA_MEMCPY3D& c = copies[i];
    c.srcMemoryType = c.dstMemoryType = CU_MEMORYTYPE_UNIFIED;
    c.srcDevice = op.src.op.ptr.ptr;
    c.dstDevice = op.dst.op.ptr.ptr;
    c.srcPitch = op.src.op.ptr.rowLength ? op.src.op.ptr.rowLength : e.width;
    c.dstPitch = op.dst.op.ptr.rowLength ? op.dst.op.ptr.rowLength : e.width;
    c.srcHeight = op.src.op.ptr.layerHeight ? op.src.op.ptr.layerHeight : e.height;
    c.dstHeight = op.dst.op.ptr.layerHeight ? op.dst.op.ptr.layerHeight : e.height;
    c.WidthInBytes = e.width;
    c.Height = e.height;
    c.Depth = e.depth;
  }
  for (const CUDA_MEMCPY3D& c : copies) {
    if (CUresult r = copy_3d(&c, h, true); r != CUDA_SUCCESS) return r;
  }
  return CUDA_SUCCESS;
}
}  // extern "C"
