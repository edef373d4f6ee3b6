// ipc_export.cpp: cuIpcGetMemHandle of memory neuzip serves.
//
// Programs share device memory between processes with legacy IPC: PyTorch's
// torch.multiprocessing sends CUDA tensors that way (the segment's base and an
// offset), vLLM's custom all-reduce shares its buffers, RLHF trainers hand
// their weights to an inference engine. The driver's legacy IPC exports
// cuMemAlloc memory only; what neuzip serves is virtual memory.
//
// So the allocation leaves compression for good: every range of it is made
// resident (as nz_untag does), the device is drained, and its contents move to
// one handle created exportable, mapped at the same address (the program's
// pointers stay valid). Its file descriptor is offered to other processes of
// the same user (util/fd_exchange.h) and the handle names it
// (ipc_handle.h); ipc_import.cpp maps it there. Other processes may read and
// write it at any time, so it is never tagged again.
//
// Costs, once per allocation: a device-wide wait, the allocation's size in
// free device memory for the copy, and one device-to-device copy. A program
// thread that launches work on the same allocation *while* it is exported
// races with the move (as it would race with the other process).
#include <unistd.h>

#include <new>

#include "runtime/ipc_handle.h"
#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

namespace {

// The address range's old backing goes; the new one is mapped in its place.
// A scratch reservation holds the new handle while the contents are copied.
class ScratchMapping {
 public:
  ScratchMapping(VmmAllocator& vmm, CUmemGenericAllocationHandle h, size_t bytes) : vmm_(vmm), bytes_(bytes) {
    const auto& api = driver().base;
    if (api.cuMemAddressReserve(&va_, bytes, vmm.page_size(), 0, 0) != CUDA_SUCCESS) {
      va_ = 0;
      return;
    }
    if (vmm.map(va_, bytes, h) == CUDA_SUCCESS) mapped_ = true;
  }
  ~ScratchMapping() {
    if (mapped_) vmm_.unmap(va_, bytes_);
    if (va_ != 0) driver().base.cuMemAddressFree(va_, bytes_);
  }
  ScratchMapping(const ScratchMapping&) = delete;
  ScratchMapping& operator=(const ScratchMapping&) = delete;
  bool ok() const noexcept { return mapped_; }
  CUdeviceptr address() const noexcept { return va_; }

 private:
  VmmAllocator& vmm_;
  size_t bytes_;
  CUdeviceptr va_ = 0;
  bool mapped_ = false;
};

void say_refused(const char* why) noexcept {
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    log(LogLevel::kError,
        "cuIpcGetMemHandle on memory neuzip serves: {}; set NEUZIP_MIN_BYTES above the size of buffers shared "
        "between processes, or NEUZIP=0",
        why);
}

}  // namespace

// Lock held, our context current, relaxed capture mode. Refuses what cannot
// be shared, then brings every range of the allocation back to resident
// memory and keeps it out of tagging from here on.
CUresult Runtime::prepare_share_locked(Allocation& a) noexcept {
  const auto& api = driver();
  int supported = 0;
  if (api.cuMemExportToShareableHandle == nullptr ||
      api.base.cuDeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED,
                                    device_) != CUDA_SUCCESS ||
      supported == 0) {
    say_refused("this driver cannot export virtual memory as a file descriptor");
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  // A registration (NCCL) or a texture object holds it as it is now: moved
  // to other pages, the holder and the program would part ways.
  if (!external_pins_.empty() && external_pins_over(a.base, a.base + a.bytes) > 0) {
    say_refused("it is registered with NCCL or bound to a texture object");
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  if (leave_compression_locked(a) != CUDA_SUCCESS) {
    say_refused("a range of it could not be restored from its compressed form");
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  return CUDA_SUCCESS;
}

// Lock held, our context current, relaxed capture mode; the context was
// drained after prepare_share_locked. The contents move to one exportable
// handle mapped at the same address. The copy waits for the runtime's own
// stream only: no device-wide wait under the lock.
CUresult Runtime::move_to_exportable_locked(Allocation& a) noexcept {
  const auto& api = driver().base;
  std::unique_ptr<Allocation::Shared> shared(new (std::nothrow) Allocation::Shared);
  if (!shared) return CUDA_ERROR_OUT_OF_MEMORY;
  CUresult r = vmm_.create_exportable(a.bytes, shared->backing);
  if (r == CUDA_ERROR_OUT_OF_MEMORY && reclaim_device_memory(a.bytes, memory_epoch_.load()) > 0)
    r = vmm_.create_exportable(a.bytes, shared->backing);
  if (r != CUDA_SUCCESS) {
    log(LogLevel::kError, "cuIpcGetMemHandle of {} ({} MiB): no device memory for its shareable copy ({})",
        hex(a.base), a.bytes >> 20, error_name(r));
    return r;
  }
  {
    ScratchMapping scratch(vmm_, shared->backing.get(), a.bytes);
    if (!scratch.ok()) {
      say_refused("no address space or mapping for its shareable copy");
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    r = api.cuMemcpyDtoDAsync(scratch.address(), a.base, a.bytes, internal_.get());
    if (r == CUDA_SUCCESS) r = api.cuStreamSynchronize(internal_.get());
    if (r != CUDA_SUCCESS) {
      log(LogLevel::kError, "cuIpcGetMemHandle of {}: copying it to its shareable copy failed ({})", hex(a.base),
          error_name(r));
      return r;
    }
  }
  for (auto& [begin, backing] : a.permanent) {
    pool_.unmap(begin, backing.second);
    pool_.release(backing.second);
  }
  a.permanent.clear();
  vmm_.release_pages(a.base, a.pages, 0, a.pages.size());
  a.pages.clear();
  ++memory_epoch_;
  r = vmm_.map(a.base, a.bytes, shared->backing.get());
  if (r != CUDA_SUCCESS) r = vmm_.map(a.base, a.bytes, shared->backing.get());  // once more
  a.shared = std::move(shared);  // the data lives there now, mapped or not
  if (r != CUDA_SUCCESS) {
    log(LogLevel::kError, "cuIpcGetMemHandle of {}: mapping its shareable copy back failed ({}); the range is "
        "unmapped until a later call maps it", hex(a.base), error_name(r));
    return r;
  }
  a.shared->mapped = true;
  emit("share", a.base, a.bytes);
  log(LogLevel::kInfo, "shared {} ({} MiB) with other processes: kept uncompressed from now on", hex(a.base),
      a.bytes >> 20);
  return CUDA_SUCCESS;
}

// Lock held: the exportable handle's descriptor offered to other processes.
CUresult Runtime::offer_shared_locked(Allocation& a) noexcept {
  Allocation::Shared& sh = *a.shared;
  if (!sh.mapped) {
    const CUresult r = vmm_.map(a.base, a.bytes, sh.backing.get());
    if (r != CUDA_SUCCESS) return r;
    sh.mapped = true;
  }
  int fd = -1;
  const CUresult r = driver().cuMemExportToShareableHandle(&fd, sh.backing.get(),
                                                            CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
  if (r != CUDA_SUCCESS || fd < 0) {
    say_refused("the driver did not export its shareable copy");
    return r != CUDA_SUCCESS ? r : CUDA_ERROR_NOT_SUPPORTED;
  }
  sh.key = fdx::random_key();
  const bool offered = fdx::offer(kIpcSocketPrefix, sh.key, fd);
  const int offer_errno = errno;
  close(fd);
  if (!offered) {
    log(LogLevel::kError, "cuIpcGetMemHandle of {}: cannot offer it to other processes ({})", hex(a.base),
        std::strerror(offer_errno));
    return CUDA_ERROR_OPERATING_SYSTEM;
  }
  sh.offered = true;
  return CUDA_SUCCESS;
}

CUresult Runtime::ipc_export(CUipcMemHandle* handle, CUdeviceptr p, bool* handled) noexcept {
  *handled = false;
  // Exports are rare and slow: one at a time, so that two threads sharing one
  // allocation make one copy (the second finds it shared).
  std::lock_guard exporting(share_mu_);
  CUdeviceptr base = 0;
  uint64_t buffer_id = 0;
  bool drain = false;
  {
    std::lock_guard lock(mutex_);
    // The wait may drop the lock (the stager needs it): before the lookup.
    if (stager_busy_ > 0 || !to_settle_.empty()) wait_for_stager_locked();
    Allocation* a = allocation_containing(p);
    if (a == nullptr) return CUDA_SUCCESS;
    *handled = true;
    if (handle == nullptr) return CUDA_ERROR_INVALID_VALUE;
    base = a->base;
    buffer_id = a->buffer_id;
    if (!a->shared) {
      RelaxedCaptureScope relaxed;
      ContextBinding bound(context_);
      if (CUresult r = prepare_share_locked(*a); r != CUDA_SUCCESS) return r;
      drain = true;
    }
  }
  // The program's queued work on it done (and the decodes above) before its
  // pages move: outside the lock, as cuMemFree's wait (allocation_life.cpp).
  if (drain) {
    RelaxedCaptureScope relaxed;
    ContextBinding bound(context_);
    if (CUresult r = driver().base.cuCtxSynchronize(); r != CUDA_SUCCESS) return r;
  }
  std::lock_guard lock(mutex_);
  Allocation* a = allocation_containing(base);
  if (a == nullptr || a->base != base || a->buffer_id != buffer_id) return CUDA_ERROR_INVALID_VALUE;  // freed meanwhile
  {
    RelaxedCaptureScope relaxed;
    ContextBinding bound(context_);
    if (!a->shared) {
      if (CUresult r = move_to_exportable_locked(*a); r != CUDA_SUCCESS) return r;
    }
    if (!a->shared->offered) {
      if (CUresult r = offer_shared_locked(*a); r != CUDA_SUCCESS) return r;
    }
  }
  IpcHandleBody body{};
  std::memcpy(body.magic, kIpcMagic, sizeof(kIpcMagic));
  body.version = kIpcVersion;
  body.pid = static_cast<int32_t>(getpid());
  body.process_id = fdx::process_id();
  body.bytes = a->bytes;
  body.requested = a->requested;
  body.key = a->shared->key;
  write_ipc_handle(handle, body);
  return CUDA_SUCCESS;
}

}  // namespace nz::rt
