// ipc_import.cpp: cuIpcOpenMemHandle / cuIpcCloseMemHandle of handles that
// neuzip made in another process (ipc_export.cpp, ipc_handle.h).
//
// The exporter offers one exportable handle's file descriptor on a socket;
// here it is fetched (util/fd_exchange.h), imported, and mapped into a fresh
// reservation with read/write access for the opening context's device. As
// the driver does for its own handles: opening the same handle again in the
// same context returns the same pointer, counted, and the last close unmaps;
// a process cannot open a handle it made. The close waits for the opening
// context's queued work first: unmapping under a kernel that still reads the
// memory would be an illegal address, and PyTorch closes a received tensor's
// handle when the tensor dies, whatever its stream still has queued.
//
// No runtime state is needed: this works with NEUZIP=0 in the importing
// process, as long as the shim saw the driver initialised.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "runtime/driver_objects.h"
#include "runtime/hooks.h"
#include "runtime/ipc_handle.h"
#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {
namespace {

struct Import {
  CUdeviceptr va = 0;
  size_t bytes = 0;
  CUmemGenericAllocationHandle handle = 0;
  fdx::Key key{};
  int32_t pid = 0;
  CUcontext ctx = nullptr;
  int refs = 0;
};

// Never destroyed: closes may come from exit handlers.
std::mutex& g_mu = *new std::mutex;
std::vector<Import>& g_imports = *new std::vector<Import>;
// The process that initialised the driver: a forked child (which cannot use
// it) forwards, and never waits on a lock a thread of its parent held.
std::atomic<pid_t> g_driver_pid{0};

// Counts one more open of an import already mapped in `ctx`; false if none.
bool reopen_locked(const IpcHandleBody& body, CUcontext ctx, CUdeviceptr* out) noexcept {
  for (Import& i : g_imports) {
    if (i.key == body.key && i.pid == body.pid && i.ctx == ctx) {
      ++i.refs;
      *out = i.va;
      return true;
    }
  }
  return false;
}

void unmap_import(const Import& imp) noexcept {
  const auto& api = driver().base;
  if (imp.va != 0) {
    api.cuMemUnmap(imp.va, imp.bytes);
    api.cuMemAddressFree(imp.va, imp.bytes);
  }
  if (imp.handle != 0) api.cuMemRelease(imp.handle);
}

// Imports and maps the descriptor; fills imp.handle and imp.va.
CUresult map_import(int fd, CUdevice device, Import& imp) noexcept {
  const auto& api = driver();
  CUresult r = api.cuMemImportFromShareableHandle(&imp.handle, reinterpret_cast<void*>(static_cast<intptr_t>(fd)),
                                                  CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
  if (r != CUDA_SUCCESS) return r;
  r = api.base.cuMemAddressReserve(&imp.va, imp.bytes, 0, 0, 0);
  if (r != CUDA_SUCCESS) {
    api.base.cuMemRelease(imp.handle);
    return r;
  }
  r = api.base.cuMemMap(imp.va, imp.bytes, 0, imp.handle, 0);
  if (r == CUDA_SUCCESS) {
    CUmemAccessDesc access{};
    access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    access.location.id = device;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    r = api.base.cuMemSetAccess(imp.va, imp.bytes, &access, 1);
    if (r != CUDA_SUCCESS) api.base.cuMemUnmap(imp.va, imp.bytes);
  }
  if (r != CUDA_SUCCESS) {
    api.base.cuMemAddressFree(imp.va, imp.bytes);
    api.base.cuMemRelease(imp.handle);
  }
  return r;
}

CUresult open_import(CUdeviceptr* out, const IpcHandleBody& body) noexcept {
  const auto& api = driver();
  if (out == nullptr || body.bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  if (body.process_id == fdx::process_id()) return CUDA_ERROR_INVALID_CONTEXT;  // as for the driver's handles
  if (api.cuMemImportFromShareableHandle == nullptr) {
    log(LogLevel::kError, "cuIpcOpenMemHandle of memory neuzip shared: this driver cannot import it");
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  CUcontext ctx = nullptr;
  CUdevice device = 0;
  if (api.base.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || ctx == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  if (CUresult r = api.base.cuCtxGetDevice(&device); r != CUDA_SUCCESS) return r;
  {
    std::lock_guard lock(g_mu);
    if (reopen_locked(body, ctx, out)) return CUDA_SUCCESS;
  }
  // Fetched and mapped without the lock: a slow or gone exporter must not
  // hold up other opens and closes in this process.
  const int fd = fdx::fetch(kIpcSocketPrefix, body.pid, body.process_id, body.key, 10000);
  if (fd < 0) {
    log(LogLevel::kError,
        "cuIpcOpenMemHandle: process {} shared this memory under neuzip but did not hand it over ({}); it must "
        "still run, be of the same user and in the same network namespace, and still hold the memory",
        body.pid, std::strerror(errno));
    return CUDA_ERROR_INVALID_HANDLE;
  }
  Import imp;
  imp.bytes = body.bytes;
  imp.key = body.key;
  imp.pid = body.pid;
  imp.ctx = ctx;
  imp.refs = 1;
  const CUresult r = map_import(fd, device, imp);
  close(fd);
  if (r != CUDA_SUCCESS) return r;
  std::lock_guard lock(g_mu);
  if (reopen_locked(body, ctx, out)) {  // another thread of this context opened it meanwhile
    unmap_import(imp);
    return CUDA_SUCCESS;
  }
  try {
    g_imports.push_back(imp);
  } catch (...) {
    unmap_import(imp);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  *out = imp.va;
  return CUDA_SUCCESS;
}

}  // namespace

void remember_driver_process() noexcept { g_driver_pid.store(getpid(), std::memory_order_relaxed); }

bool ipc_open(CUdeviceptr* out, const CUipcMemHandle& handle, unsigned flags, CUresult* result) noexcept {
  const auto body = read_ipc_handle(handle);
  if (!body || g_driver_pid.load(std::memory_order_relaxed) != getpid()) return false;
  *result = (flags & ~unsigned{CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS}) != 0 ? CUDA_ERROR_INVALID_VALUE
                                                                          : open_import(out, *body);
  return true;
}

bool ipc_close(CUdeviceptr p, CUresult* result) noexcept {
  if (g_driver_pid.load(std::memory_order_relaxed) != getpid()) return false;
  Import gone;
  {
    std::lock_guard lock(g_mu);
    auto it = std::find_if(g_imports.begin(), g_imports.end(), [p](const Import& i) { return i.va == p; });
    if (it == g_imports.end()) return false;
    *result = CUDA_SUCCESS;
    if (--it->refs > 0) return true;
    gone = *it;
    g_imports.erase(it);
  }
  // Unmapped after the queued work in any case: a context that cannot be
  // waited for is gone or broken, and its work with it. Relaxed capture
  // mode: another thread's capture must not refuse the wait.
  {
    detail::RelaxedCaptureScope relaxed;
    detail::synchronize_context(gone.ctx);
  }
  unmap_import(gone);
  return true;
}

}  // namespace nz::rt
