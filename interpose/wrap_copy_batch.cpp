// wrap_copy_batch.cpp: the batched copies of CUDA 12.8+, cuMemcpyBatchAsync
// (linear copies between pointers) and cuMemcpy3DBatchAsync (3D copies
// between pointers and arrays), in both ABIs each (12.8's with failIdx, 13's
// without). Every device range a copy reads or writes is reported before
// the batch, so compressed memory is staged first; copies from host memory
// fill weights as cuMemcpyHtoDAsync does (a checkpoint loader may batch them)
// and tag their destinations.
#include <cstdint>
#include <new>
#include <vector>

#include "real_driver.h"
#include "shim_log.h"
#include "transfer_spans.h"
#include "wrap_common.h"

namespace nz::shim {
namespace {

using rt::Access;
using rt::Span;

void tag_host_fill(CUdeviceptr dst, size_t bytes, CUdeviceptr src, CUstream stream, bool per_thread,
                   const char* api) noexcept {
  const Span s[] = {{dst, bytes, Access::kWrite}};
  rt::after_transfer(transfer_desc(s, 1, stream, per_thread, true, true, api, reinterpret_cast<const void*>(src)),
                     CUDA_SUCCESS);
}

// cuMemcpyBatchAsync: every copy's two pointers. `call()` makes the real
// call, in whichever ABI the program asked for.
template <bool PT, typename Call>
CUresult batch_copies(CUdeviceptr* dsts, CUdeviceptr* srcs, size_t* sizes, size_t count, CUstream stream,
                      Call&& call) noexcept {
  if (!rt::active() || !dsts || !srcs || !sizes || count == 0) return call();
  std::vector<Span> spans;
  try {
    spans.reserve(2 * count);
  } catch (...) {
    log_line("cuMemcpyBatchAsync: no memory to describe {} copies; not checked", count);
    return call();
  }
  for (size_t i = 0; i < count; ++i) {
    spans.push_back({dsts[i], sizes[i], Access::kWrite});
    spans.push_back({srcs[i], sizes[i], Access::kRead});
  }
  const CUresult r =
      run_transfer(call, transfer_desc(spans.data(), spans.size(), stream, PT, true, false, "cuMemcpyBatchAsync"));
  if (r != CUDA_SUCCESS) return r;
  for (size_t i = 0; i < count; ++i) {
    if (sizes[i] != 0 && is_host_source(srcs[i]))
      tag_host_fill(dsts[i], sizes[i], srcs[i], stream, PT, "cuMemcpyBatchAsync");
  }
  return r;
}

// The CUDA 13 ABI (no failIdx).
template <Hook H, bool PT>
CUresult batch(CUdeviceptr* dsts, CUdeviceptr* srcs, size_t* sizes, size_t count,
               CUmemcpyAttributes* attrs, size_t* attr_idxs, size_t num_attrs,
               CUstream stream) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr*, CUdeviceptr*, size_t*, size_t, CUmemcpyAttributes*,
                                   size_t*, size_t, CUstream)>(H);
  if (!real) return missing_entry(H);
  return batch_copies<PT>(dsts, srcs, sizes, count, stream,
                          [&] { return real(dsts, srcs, sizes, count, attrs, attr_idxs, num_attrs, stream); });
}

// The CUDA 12.8 ABI (failIdx: the copy a failure is attributed to), which
// programs built for CUDA 12.8-12.9 get, and all a 12.8-12.9 driver has.
template <Hook H, bool PT>
CUresult batch_v1(CUdeviceptr* dsts, CUdeviceptr* srcs, size_t* sizes, size_t count,
                  CUmemcpyAttributes* attrs, size_t* attr_idxs, size_t num_attrs, size_t* fail_idx,
                  CUstream stream) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr*, CUdeviceptr*, size_t*, size_t, CUmemcpyAttributes*,
                                   size_t*, size_t, size_t*, CUstream)>(H);
  if (!real) return missing_entry(H);
  // A failure before the driver (staging) pertains to no one copy.
  if (fail_idx) *fail_idx = SIZE_MAX;
  return batch_copies<PT>(dsts, srcs, sizes, count, stream, [&] {
    return real(dsts, srcs, sizes, count, attrs, attr_idxs, num_attrs, fail_idx, stream);
  });
}

// Bytes per element of a CUDA array, for the pointer side of a copy to or
// from it (extents are in the array's elements). Unknown formats answer 16,
// the largest element any format has (four 32-bit channels; a BC block):
// a range too long stages more than needed, one too short would not do.
size_t array_element_bytes(CUarray array) noexcept {
  constexpr size_t kLargest = 16;
  using GetDesc = CUresult (*)(CUDA_ARRAY3D_DESCRIPTOR*, CUarray);
  static const auto get = reinterpret_cast<GetDesc>(real_driver_symbol("cuArray3DGetDescriptor_v2"));
  CUDA_ARRAY3D_DESCRIPTOR d{};
  if (get == nullptr || array == nullptr || get(&d, array) != CUDA_SUCCESS) return kLargest;
  size_t channel = 0;
  switch (d.Format) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
      channel = 1;
      break;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
      channel = 2;
      break;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT:
      channel = 4;
      break;
    default:
      return kLargest;
  }
  return d.NumChannels >= 1 && d.NumChannels <= 4 ? channel * d.NumChannels : kLargest;
}

size_t element_bytes(const CUDA_MEMCPY3D_BATCH_OP& op) noexcept {
  if (op.src.type == CU_MEMCPY_OPERAND_TYPE_ARRAY) return array_element_bytes(op.src.op.array.array);
  if (op.dst.type == CU_MEMCPY_OPERAND_TYPE_ARRAY) return array_element_bytes(op.dst.op.array.array);
  return 1;
}

// A pointer operand whose rows and layers follow each other with no gap:
// the destination range it fills is all written.
bool dense(const CUmemcpy3DOperand& o, const CUextent3D& e) noexcept {
  const bool rows_packed = e.height <= 1 || o.op.ptr.rowLength == 0 || o.op.ptr.rowLength == e.width;
  const bool layers_packed = e.depth <= 1 || o.op.ptr.layerHeight == 0 || o.op.ptr.layerHeight == e.height;
  return rows_packed && layers_packed;
}

// cuMemcpy3DBatchAsync: each operation's pointer sides.
template <bool PT, typename Call>
CUresult batch_3d(size_t count, const CUDA_MEMCPY3D_BATCH_OP* ops, CUstream stream, Call&& call) noexcept {
  if (!rt::active() || ops == nullptr || count == 0) return call();
  std::vector<Span> spans;
  try {
    spans.reserve(2 * count);
  } catch (...) {
    log_line("cuMemcpy3DBatchAsync: no memory to describe {} copies; not checked", count);
    return call();
  }
  for (size_t i = 0; i < count; ++i) {
    const SpanPair p = spans_of(ops[i], element_bytes(ops[i]));
    for (size_t k = 0; k < p.count; ++k) spans.push_back(p.spans[k]);
  }
  const CUresult r =
      run_transfer(call, transfer_desc(spans.data(), spans.size(), stream, PT, true, false, "cuMemcpy3DBatchAsync"));
  if (r != CUDA_SUCCESS) return r;
  for (size_t i = 0; i < count; ++i) {
    const CUDA_MEMCPY3D_BATCH_OP& op = ops[i];
    if (op.src.type != CU_MEMCPY_OPERAND_TYPE_POINTER || op.dst.type != CU_MEMCPY_OPERAND_TYPE_POINTER) continue;
    if (!dense(op.dst, op.extent) || !is_host_source(op.src.op.ptr.ptr)) continue;
    const SpanPair p = spans_of(op, 1);
    tag_host_fill(op.dst.op.ptr.ptr, p.spans[1].bytes, op.src.op.ptr.ptr, stream, PT, "cuMemcpy3DBatchAsync");
  }
  return r;
}

// The CUDA 13 ABI (no failIdx).
template <Hook H, bool PT>
CUresult batch3d(size_t count, CUDA_MEMCPY3D_BATCH_OP* ops, unsigned long long flags, CUstream stream) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(size_t, CUDA_MEMCPY3D_BATCH_OP*, unsigned long long, CUstream)>(H);
  if (!real) return missing_entry(H);
  return batch_3d<PT>(count, ops, stream, [&] { return real(count, ops, flags, stream); });
}

// The CUDA 12.8 ABI (failIdx before the flags).
template <Hook H, bool PT>
CUresult batch3d_v1(size_t count, CUDA_MEMCPY3D_BATCH_OP* ops, size_t* fail_idx, unsigned long long flags,
                    CUstream stream) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(size_t, CUDA_MEMCPY3D_BATCH_OP*, size_t*, unsigned long long, CUstream)>(H);
  if (!real) return missing_entry(H);
  if (fail_idx) *fail_idx = SIZE_MAX;
  return batch_3d<PT>(count, ops, stream, [&] { return real(count, ops, fail_idx, flags, stream); });
}

}  // namespace
}  // namespace nz::shim

using nz::shim::batch;
using nz::shim::batch3d;
using nz::shim::batch3d_v1;
using nz::shim::batch_v1;

NZ_WRAP_PAIR(MemcpyBatchAsync_v1, MemcpyBatchAsync_v1_ptsz, batch_v1,
             (CUdeviceptr * d, CUdeviceptr* s, size_t* n, size_t count, CUmemcpyAttributes* a,
              size_t* ai, size_t na, size_t* fail, CUstream st),
             (d, s, n, count, a, ai, na, fail, st))
NZ_WRAP_PAIR(MemcpyBatchAsync_v2, MemcpyBatchAsync_v2_ptsz, batch,
             (CUdeviceptr * d, CUdeviceptr* s, size_t* n, size_t count, CUmemcpyAttributes* a,
              size_t* ai, size_t na, CUstream st),
             (d, s, n, count, a, ai, na, st))
NZ_WRAP_PAIR(Memcpy3DBatchAsync_v1, Memcpy3DBatchAsync_v1_ptsz, batch3d_v1,
             (size_t count, CUDA_MEMCPY3D_BATCH_OP* ops, size_t* fail, unsigned long long f, CUstream st),
             (count, ops, fail, f, st))
NZ_WRAP_PAIR(Memcpy3DBatchAsync_v2, Memcpy3DBatchAsync_v2_ptsz, batch3d,
             (size_t count, CUDA_MEMCPY3D_BATCH_OP* ops, unsigned long long f, CUstream st), (count, ops, f, st))
