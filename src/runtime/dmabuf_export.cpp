// dmabuf_export.cpp: cuMemGetHandleForAddressRange of memory neuzip serves.
//
// Stacks that hand GPU memory to a NIC or a storage driver export it as a
// dma-buf: NCCL's IB and EFA network plugins when they register buffers,
// UCX and libfabric (MPI, NIXL, vLLM's KV-cache transfer), cuFile for
// GPUDirect Storage. A dma-buf holds the physical pages that backed the range
// when it was made (the driver requires the range mapped whole and "a new
// handle every time the underlying physical allocation(s) ... are changed"),
// and the device behind it reads and writes them at any time, outside every
// stream. A range neuzip compresses has no pages, and one it stages gets
// others at each staging: the export fails, or, worse, the NIC later reads
// stale bytes and its writes never reach the program.
//
// So the allocation leaves compression for good, as for IPC (ipc_export.cpp)
// but in place: every range of it is made resident (as nz_untag does; the
// decodes are waited for), and it is never tagged again. Its pages then stay
// where they are until cuMemFree, as cuMemAlloc memory's do, and the driver
// exports them. neuzip's own page handles and staging handles are created
// with the same properties, as the driver requires of one dma-buf's pages.
//
// Costs, once per allocation: the decodes of what was compressed (waited for
// on the runtime's stream); the saving on it is gone.
#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

CUresult Runtime::leave_compression_locked(Allocation& a) noexcept {
  a.leaving = true;  // from here no copy or declaration tags it again (tag_locked)
  const uint64_t tagged = a.tags.tagged_bytes();
  a.tags.remove(a.base, a.base + a.bytes);
  stats_.bytes_tagged.sub(tagged);
  replan(a, AddressWindow{a.base, a.base + a.bytes}, false);  // decodes what was compressed, as nz_untag
  a.untagged = TagSet{};
  a.declared = TagSet{};
  return a.units.empty() ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult Runtime::before_dmabuf_export(CUdeviceptr p, size_t bytes, bool* handled) noexcept {
  *handled = false;
  std::lock_guard lock(mutex_);
  // The wait may drop the lock (the stager needs it): before the lookup.
  if (stager_busy_ > 0 || !to_settle_.empty()) wait_for_stager_locked();
  Allocation* a = allocation_containing(p);
  if (a == nullptr) return CUDA_SUCCESS;
  *handled = true;
  a->dmabuf = true;  // its pages must outlive it (release_allocation)
  // Exported or shared before: its pages stay put already (unless a restore
  // failed then: tried again).
  if (a->leaving && a->units.empty()) return CUDA_SUCCESS;
  RelaxedCaptureScope relaxed;
  ContextBinding bound(context_);
  // The decodes are waited for inside (retire, make_resident): on the
  // runtime's own stream only. No context-wide wait: NCCL's proxy thread
  // exports while the rank's kernels may wait for peers that wait for it.
  if (leave_compression_locked(*a) != CUDA_SUCCESS) {
    log(LogLevel::kError, "cuMemGetHandleForAddressRange of {}: a range of its allocation could not be restored "
        "from its compressed form; not exported", hex(p));
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  emit("dmabuf", a->base, a->bytes);
  log(LogLevel::kInfo, "{} ({} MiB) exported as a dma-buf ({} bytes at {}): kept uncompressed from now on",
      hex(a->base), a->bytes >> 20, bytes, hex(p));
  return CUDA_SUCCESS;
}

}  // namespace nz::rt
