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

// Lock held, our context current, relaxed capture mode.
CUresult Runtime::share_locked(Allocation& a) noexcept {
  const auto& api = driver();
  int supported = 0;
  if (api.cuMemExportToShareableHandle == nullptr ||
      api.base.cuDeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED,
                                    device_) != CUDA_SUCCESS ||
      supported == 0) {
    say_refused("this driver cannot export virtual memory as a file descriptor");
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  if (stager_busy_ > 0 || !to_settle_.empty()) wait_for_stager_locked();
  // 1. Everything back in its own memory (compressed ranges decoded), as
  //    nz_untag of the whole allocation does.
  const uint64_t tagged = a.tags.tagged_bytes();
  a.tags.remove(a.base, a.base + a.bytes);
  stats_.bytes_tagged.sub(tagged);
  replan(a, AddressWindow{a.base, a.base + a.bytes}, false);
  if (!a.units.empty()) {
    say_refused("a range of it could not be restored from its compressed form");
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  // 2. The program's queued work on it done (and the decodes above).
  if (api.base.cuCtxSynchronize() != CUDA_SUCCESS) return CUDA_ERROR_ILLEGAL_STATE;
  // 3. Its contents into one exportable handle, mapped at the same address.
  auto shared = std::make_unique<Allocation::Shared>();
  if (CUresult r = vmm_.create_exportable(a.bytes, shared->backing); r != CUDA_SUCCESS) {
    log(LogLevel::kError, "cuIpcGetMemHandle of {} ({} MiB): no device memory for its shareable copy ({})",
        hex(a.base), a.bytes >> 20, static_cast<int>(r));
    return r;
  }
  {
    ScratchMapping scratch(vmm_, shared->backing.get(), a.bytes);
    if (!scratch.ok()) {
      say_refused("no address space or mapping for its shareable copy");
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (api.base.cuMemcpyDtoD(scratch.address(), a.base, a.bytes) != CUDA_SUCCESS ||
        api.base.cuCtxSynchronize() != CUDA_SUCCESS) {
      say_refused("copying it to its shareable copy failed");
      return CUDA_ERROR_ILLEGAL_STATE;
    }
  }
  for (auto& [begin, backing] : a.permanent) {
    pool_.unmap(begin, backing.second);
    pool_.release(backing.second);
  }
  a.permanent.clear();
  vmm_.release_pages(a.base, a.pages, 0, a.pages.size());
  a.pages.clear();
  if (CUresult r = vmm_.map(a.base, a.bytes, shared->backing.get()); r != CUDA_SUCCESS) {
    // The old pages are gone and the new ones cannot be mapped: the data
    // lives only in the new handle. Nothing safe remains for this range.
    log(LogLevel::kError, "cuIpcGetMemHandle of {}: mapping its shareable copy failed ({}); the range is lost",
        hex(a.base), static_cast<int>(r));
    return r;
  }
  // 4. Offered to other processes.
  int fd = -1;
  if (api.cuMemExportToShareableHandle(&fd, shared->backing.get(), CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0) !=
          CUDA_SUCCESS ||
      fd < 0) {
    a.shared = std::move(shared);  // backed by it now all the same
    say_refused("the driver did not export its shareable copy");
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  shared->key = fdx::random_key();
  const bool offered = fdx::offer(kIpcSocketPrefix, shared->key, fd);
  const int offer_errno = errno;
  close(fd);
  a.shared = std::move(shared);
  if (!offered) {
    log(LogLevel::kError, "cuIpcGetMemHandle of {}: cannot offer it to other processes ({})", hex(a.base),
        std::strerror(offer_errno));
    return CUDA_ERROR_OPERATING_SYSTEM;
  }
  ++memory_epoch_;
  emit("share", a.base, a.bytes);
  log(LogLevel::kInfo, "shared {} ({} MiB) with other processes: kept uncompressed from now on", hex(a.base),
      a.bytes >> 20);
  return CUDA_SUCCESS;
}

CUresult Runtime::ipc_export(CUipcMemHandle* handle, CUdeviceptr p, bool* handled) noexcept {
  *handled = false;
  std::lock_guard lock(mutex_);
  Allocation* a = allocation_containing(p);
  if (a == nullptr) return CUDA_SUCCESS;
  *handled = true;
  if (handle == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!a->shared) {
    RelaxedCaptureScope relaxed;
    ContextBinding bound(context_);
    if (CUresult r = share_locked(*a); r != CUDA_SUCCESS) return r;
  }
  IpcHandleBody body{};
  std::memcpy(body.magic, kIpcMagic, sizeof(kIpcMagic));
  body.version = kIpcVersion;
  body.pid = static_cast<int32_t>(getpid());
  body.bytes = a->bytes;
  body.requested = a->requested;
  body.key = a->shared->key;
  write_ipc_handle(handle, body);
  return CUDA_SUCCESS;
}

}  // namespace nz::rt
