// wrap_memops.cpp: cuStreamWriteValue32/64, cuStreamWaitValue32/64 and
// cuStreamBatchMemOp touch device memory outside any kernel: the words they
// write or poll are reported as spans, so a compressed range is staged before
// the write lands (and recompressed later) or the wait reads it, and a use
// recorded after the operation holds it staged while a wait blocks its
// stream. A flag is usually a small buffer below NEUZIP_MIN_BYTES, but the
// caching allocator puts small tensors in 2 MiB segments, and the optimizer
// policy compresses idle buffers without any tag.
#include <new>
#include <vector>

#include "shim_log.h"
#include "transfer_spans.h"
#include "wrap_common.h"

namespace nz::shim {
namespace {

using rt::Access;
using rt::Span;

// cuStreamWriteValue32/64 (writes) and cuStreamWaitValue32/64 (reads): one word.
template <Hook H, bool PT, typename T, bool Write>
CUresult word_op(CUstream st, CUdeviceptr addr, T value, unsigned flags) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUstream, CUdeviceptr, T, unsigned)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(st, addr, value, flags);
  const Span s[] = {{addr, sizeof(T), Write ? Access::kWrite : Access::kRead}};
  rt::TransferDesc d = transfer_desc(s, 1, st, PT, true, false, Write ? "cuStreamWriteValue" : "cuStreamWaitValue");
  d.waits = !Write;
  return run_transfer(real, d, st, addr, value, flags);
}

template <Hook H, bool PT>
CUresult batch_mem_op(CUstream st, unsigned count, CUstreamBatchMemOpParams* ops, unsigned flags) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUstream, unsigned, CUstreamBatchMemOpParams*, unsigned)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active() || ops == nullptr || count == 0) return real(st, count, ops, flags);
  std::vector<Span> spans;
  try {
    spans.reserve(count);
    append_memop_spans(ops, count, spans);
  } catch (...) {
    log_line("cuStreamBatchMemOp: no memory to describe {} operations; not checked", count);
    return real(st, count, ops, flags);
  }
  rt::TransferDesc d = transfer_desc(spans.data(), spans.size(), st, PT, true, false, "cuStreamBatchMemOp");
  for (unsigned i = 0; i < count; ++i)
    d.waits = d.waits || ops[i].operation == CU_STREAM_MEM_OP_WAIT_VALUE_32 ||
              ops[i].operation == CU_STREAM_MEM_OP_WAIT_VALUE_64;
  return run_transfer(real, d, st, count, ops, flags);
}

template <Hook H, bool PT>
CUresult write32(CUstream st, CUdeviceptr addr, cuuint32_t v, unsigned flags) noexcept {
  return word_op<H, PT, cuuint32_t, true>(st, addr, v, flags);
}
template <Hook H, bool PT>
CUresult write64(CUstream st, CUdeviceptr addr, cuuint64_t v, unsigned flags) noexcept {
  return word_op<H, PT, cuuint64_t, true>(st, addr, v, flags);
}

template <Hook H, bool PT>
CUresult wait32(CUstream st, CUdeviceptr addr, cuuint32_t v, unsigned flags) noexcept {
  return word_op<H, PT, cuuint32_t, false>(st, addr, v, flags);
}
template <Hook H, bool PT>
CUresult wait64(CUstream st, CUdeviceptr addr, cuuint64_t v, unsigned flags) noexcept {
  return word_op<H, PT, cuuint64_t, false>(st, addr, v, flags);
}

}  // namespace
}  // namespace nz::shim

NZ_WRAP_PAIR(StreamWriteValue32_v2, StreamWriteValue32_v2_ptsz, nz::shim::write32,
             (CUstream st, CUdeviceptr a, cuuint32_t v, unsigned f), (st, a, v, f))
NZ_WRAP_PAIR(StreamWriteValue64_v2, StreamWriteValue64_v2_ptsz, nz::shim::write64,
             (CUstream st, CUdeviceptr a, cuuint64_t v, unsigned f), (st, a, v, f))
NZ_WRAP_PAIR(StreamWaitValue32_v2, StreamWaitValue32_v2_ptsz, nz::shim::wait32,
             (CUstream st, CUdeviceptr a, cuuint32_t v, unsigned f), (st, a, v, f))
NZ_WRAP_PAIR(StreamWaitValue64_v2, StreamWaitValue64_v2_ptsz, nz::shim::wait64,
             (CUstream st, CUdeviceptr a, cuuint64_t v, unsigned f), (st, a, v, f))
NZ_WRAP_PAIR(StreamBatchMemOp_v2, StreamBatchMemOp_v2_ptsz, nz::shim::batch_mem_op,
             (CUstream st, unsigned n, CUstreamBatchMemOpParams* ops, unsigned f), (st, n, ops, f))

// The CUDA 8-11.6 ABIs (the v1 batch parameters' layout is the v2 one's).
NZ_WRAP_PAIR(StreamWriteValue32_v1, StreamWriteValue32_v1_ptsz, nz::shim::write32,
             (CUstream st, CUdeviceptr a, cuuint32_t v, unsigned f), (st, a, v, f))
NZ_WRAP_PAIR(StreamWriteValue64_v1, StreamWriteValue64_v1_ptsz, nz::shim::write64,
             (CUstream st, CUdeviceptr a, cuuint64_t v, unsigned f), (st, a, v, f))
NZ_WRAP_PAIR(StreamWaitValue32_v1, StreamWaitValue32_v1_ptsz, nz::shim::wait32,
             (CUstream st, CUdeviceptr a, cuuint32_t v, unsigned f), (st, a, v, f))
NZ_WRAP_PAIR(StreamWaitValue64_v1, StreamWaitValue64_v1_ptsz, nz::shim::wait64,
             (CUstream st, CUdeviceptr a, cuuint64_t v, unsigned f), (st, a, v, f))
NZ_WRAP_PAIR(StreamBatchMemOp_v1, StreamBatchMemOp_v1_ptsz, nz::shim::batch_mem_op,
             (CUstream st, unsigned n, CUstreamBatchMemOpParams* ops, unsigned f), (st, n, ops, f))
