// peer_access.cpp: other devices reaching the memory neuzip serves.
//
// Without neuzip, cuCtxEnablePeerAccess from a context of device B to the
// context of device A lets B's kernels and copies reach every cuMemAlloc
// allocation of A, and B's copies to and from A's memory work with or
// without it. neuzip serves those allocations with CUDA virtual memory,
// which peer access does not cover (each device needs its own
// cuMemSetAccess) and which the driver copies across devices only by the
// peer forms, or with the holding device current. So:
// - peer access: the runtime grants B whatever is mapped now and every
//   mapping it makes later (VmmAllocator::grant_device), as PyTorch's own
//   expandable segments do for their peers; enabled before the runtime set
//   up (the program enables it, then allocates), it is granted at setup.
//   Disabling peer access leaves the grant: more access than asked for
//   changes no result;
// - device-to-device copies made in B's context go as peer copies
//   (peer_copy_contexts), host copies run in A's context (enter_served_context).
#include "runtime/runtime.h"

#include <atomic>

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

void Runtime::on_peer_access_enabled(CUcontext peer) noexcept {
  const auto& api = driver().base;
  CUdevice accessor = 0;
  if (peer == nullptr || api.cuCtxGetDevice(&accessor) != CUDA_SUCCESS) return;
  std::lock_guard lock(mutex_);
  if (!setup_ok_) {
    // Not set up yet (or never: then nothing is served and nothing to grant).
    if (!setup_tried_ && pending_peers_.size() < 64) {
      try {
        pending_peers_.emplace_back(peer, accessor);
      } catch (...) {
      }
    }
    return;
  }
  grant_peer(peer, accessor);
}

void Runtime::grant_pending_peers() noexcept {
  std::vector<std::pair<CUcontext, CUdevice>> pending;
  pending.swap(pending_peers_);
  for (const auto& [peer, accessor] : pending) grant_peer(peer, accessor);
}

void Runtime::grant_peer(CUcontext peer, CUdevice accessor) noexcept {
  if (peer != context_ || accessor == device_ || vmm_.granted(accessor)) return;
  if (vmm_.grant_device(accessor)) {
    log(LogLevel::kInfo, "device {} enabled peer access to device {}: the memory neuzip serves there is granted to it",
        static_cast<int>(accessor), device_ordinal_);
  } else {
    log(LogLevel::kError,
        "device {} enabled peer access to device {}, but the driver refused to grant it the memory neuzip serves: "
        "its kernels may fault there (NEUZIP=0 to confirm)",
        static_cast<int>(accessor), device_ordinal_);
  }
}

// Whether the calling thread works in a context of another device than the
// served one (`current` and `device` set then). Asked first on every copy
// hook, so it answers the usual case (nothing served yet, or the served
// context current) with one driver getter and an atomic load, without the
// runtime lock: served_context_ is published after device_ was set.
bool Runtime::from_other_device(CUcontext* current, CUdevice* device) const noexcept {
  const CUcontext served = served_context_.load(std::memory_order_acquire);
  if (served == nullptr) return false;
  const auto& api = driver().base;
  if (api.cuCtxGetCurrent(current) != CUDA_SUCCESS || *current == nullptr || *current == served) return false;
  return api.cuCtxGetDevice(device) == CUDA_SUCCESS && *device != device_;
}

// The context a device pointer belongs to, as the driver answers; the
// calling thread's for device memory the driver names no context for (a
// program's own virtual memory); null for host memory or a failed query.
static CUcontext device_context_of(CUdeviceptr p) noexcept {
  const auto& api = driver();
  if (api.cuPointerGetAttribute == nullptr) return nullptr;
  unsigned type = 0;
  if (api.cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, p) != CUDA_SUCCESS ||
      type != CU_MEMORYTYPE_DEVICE)
    return nullptr;
  CUcontext ctx = nullptr;
  if (api.cuPointerGetAttribute(&ctx, CU_POINTER_ATTRIBUTE_CONTEXT, p) == CUDA_SUCCESS && ctx != nullptr) return ctx;
  // No context named (virtual or pool memory): the current one if it is on
  // the memory's device, else that device's primary context (the CUDA
  // runtime's), if it is active.
  int ordinal = -1;
  CUdevice current_device = 0;
  if (api.base.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS) ctx = nullptr;
  if (api.cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p) != CUDA_SUCCESS || ordinal < 0 ||
      (api.base.cuCtxGetDevice(&current_device) == CUDA_SUCCESS && static_cast<int>(current_device) == ordinal))
    return ctx;
  return active_primary_context(ordinal);
}

bool Runtime::peer_copy_contexts(CUdeviceptr dst, CUdeviceptr src, CUcontext* dctx, CUcontext* sctx) noexcept {
  CUcontext current = nullptr;
  CUdevice device = 0;
  if (!from_other_device(&current, &device)) return false;
  const bool dst_ours = is_managed(dst);
  const bool src_ours = is_managed(src);
  if (!dst_ours && !src_ours) return false;
  const CUcontext served = served_context_.load(std::memory_order_acquire);
  *dctx = dst_ours ? served : device_context_of(dst);
  *sctx = src_ours ? served : device_context_of(src);
  return *dctx != nullptr && *sctx != nullptr;
}

// A host copy (or a unified copy with a host side) of served memory made in
// another device's context. The driver refuses host copies of stream-ordered
// memory unless the device holding it is current ("set the correct device",
// fwyzard/nvidia_bug_3446335), and served memory is virtual memory where the
// program expected cuMemAlloc memory, which needs no such care. So the copy
// runs in the served context, after the caller's queued work, and the shim
// waits for it: the caller's stream knows nothing of the served context's.
bool Runtime::enter_served_context(CUdeviceptr a, CUdeviceptr b, CUstream stream, CUcontext* restore) noexcept {
  CUcontext current = nullptr;
  CUdevice device = 0;
  if (!from_other_device(&current, &device) || (!is_managed(a) && !is_managed(b))) return false;
  const auto& api = driver().base;
  if (detail::stream_capturing(stream)) return false;  // part of a graph: the program's as asked
  const bool special = stream == nullptr || stream == CU_STREAM_LEGACY || stream == CU_STREAM_PER_THREAD;
  const detail::RelaxedCaptureScope relaxed;  // another thread's global capture stays valid
  if ((special ? api.cuCtxSynchronize() : api.cuStreamSynchronize(stream)) != CUDA_SUCCESS) return false;
  if (api.cuCtxSetCurrent(served_context_.load(std::memory_order_acquire)) != CUDA_SUCCESS) return false;
  *restore = current;
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    log(LogLevel::kInfo, "a host copy of device {}'s memory made from device {}: run on device {}, synchronously",
        device_ordinal_, static_cast<int>(device), device_ordinal_);
  return true;
}

}  // namespace nz::rt
