// cuMemAlloc family, pinned host memory, cuMemGetInfo and pointer attributes.
//
// Device memory is host memory carved from the simulated device address space
// (sim_va.h), mapped read-write while allocated and PROT_NONE after free.
// Accounting counts each allocation rounded up to 4 KiB pages.
#include "sim_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>

#include "sim_stream.h"
#include "sim_va.h"

namespace nzsim {
namespace {

struct LinearAlloc {
  size_t size = 0;      // requested bytes
  size_t physical = 0;  // accounted bytes (page-rounded)
  Context* ctx = nullptr;
  uint64_t buffer_id = 0;
  // Legacy IPC (sim_ipc.cpp). Exported: the pages were moved to this memfd
  // (also for a dma-buf, sim_dmabuf.cpp), offered to other processes under
  // `ipc_key` once ipc_offered. Imported: a mapping of another
  // process's memfd, counted there, not here; `import_refs` opens in this process.
  int ipc_fd = -1;
  nz::fdx::Key ipc_key{};
  bool ipc_offered = false;  // ipc_fd may also be there for a dma-buf only
  bool imported = false;
  int import_refs = 0;
};

struct HostAlloc {
  size_t size = 0;
  unsigned flags = 0;
  bool owned = false;  // allocated by us (cuMemAllocHost) vs registered
  Context* ctx = nullptr;  // pinned memory goes with its context, as on a GPU
};

// Never destroyed: a stream's worker thread may still run a queued
// cuMemFreeAsync while the process exits, after static destructors ran (a
// CI run crashed in free_linear inside _dl_fini's destruction of the map).
std::mutex& g_mu = *new std::mutex;
std::map<uintptr_t, LinearAlloc>& g_allocs = *new std::map<uintptr_t, LinearAlloc>;
std::map<uintptr_t, HostAlloc>& g_hosts = *new std::map<uintptr_t, HostAlloc>;
std::atomic<uint64_t> g_next_buffer_id{1};

template <typename Map>
auto find_containing(Map& m, uintptr_t addr) {
  auto it = m.upper_bound(addr);
  if (it == m.begin()) return m.end();
  --it;
  if (addr >= it->first && addr < it->first + std::max<size_t>(it->second.size, 1)) return it;
  return m.end();
}

// The stream-ordered allocator's pool: memory freed by cuMemFreeAsync (once
// its stream reached the free) stays reserved by the pool, counted as used
// and not there for cuMemAlloc or cuMemCreate, until the next stream, event
// or context synchronization returns it to the device — the real pool's
// default (CU_MEMPOOL_ATTR_RELEASE_THRESHOLD 0). cuMemAllocAsync reuses it.
// (Freed at once, a runtime that staged right after freeing stores found the
// memory there; on a GPU it is not until a synchronization.)
std::atomic<uint64_t> g_pool_kept{0};

// Takes `bytes` of the pool's reserve for cuMemAllocAsync.
bool take_from_pool(uint64_t bytes) {
  uint64_t kept = g_pool_kept.load();
  while (kept >= bytes)
    if (g_pool_kept.compare_exchange_weak(kept, kept - bytes)) return true;
  return false;
}

// `reserved`: the physical bytes are already taken (from the pool).
CUresult allocate(CUdeviceptr* dptr, size_t bytes, bool reserved = false) {
  if (!dptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  size_t physical = align_up(bytes, kPageSize);
  if (!reserved && !try_reserve_physical(physical)) return CUDA_ERROR_OUT_OF_MEMORY;
  uintptr_t addr = va_allocate(physical, 512);
  if (!addr) {
    release_physical(physical);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  void* p = mmap(reinterpret_cast<void*>(addr), physical, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    va_release(addr, physical);
    release_physical(physical);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  {
    std::lock_guard lock(g_mu);
    g_allocs[addr] = LinearAlloc{bytes, physical, c, g_next_buffer_id.fetch_add(1)};
  }
  *dptr = addr;
  log_debug("cuMemAlloc {} bytes -> {:#x}", bytes, addr);
  return CUDA_SUCCESS;
}

// `to_pool`: a stream-ordered free, whose memory the pool keeps (above).
CUresult free_linear(uintptr_t addr, bool to_pool = false) {
  LinearAlloc a;
  {
    std::lock_guard lock(g_mu);
    auto it = g_allocs.find(addr);
    if (it == g_allocs.end() || it->second.imported) return CUDA_ERROR_INVALID_VALUE;
    a = it->second;
    g_allocs.erase(it);
  }
  if (a.ipc_fd >= 0) {  // importers and dma-bufs keep their own reference to the memfd
    if (a.ipc_offered) nz::fdx::withdraw(a.ipc_key);
    close(a.ipc_fd);
  }
  va_release(addr, a.physical);
  if (to_pool) g_pool_kept.fetch_add(a.physical);
  else release_physical(a.physical);
  return CUDA_SUCCESS;
}

}  // namespace

CUresult allocate_global(size_t bytes, uintptr_t* out) {
  CUdeviceptr p = 0;
  const CUresult r = allocate(&p, bytes);
  if (r == CUDA_SUCCESS) *out = p;  // fresh anonymous pages: zeroed
  return r;
}

void free_global(uintptr_t addr) { free_linear(addr); }  // (gone already if its context was destroyed)

void release_pool_memory() {
  if (const uint64_t kept = g_pool_kept.exchange(0)) release_physical(kept);
}

MemKind kind_of(uintptr_t addr) {
  if (va_contains(addr)) return MemKind::device;
  std::lock_guard lock(g_mu);
  return find_containing(g_hosts, addr) != g_hosts.end() ? MemKind::pinned_host : MemKind::pageable_host;
}

void free_context_allocations(Context* c) {
  std::vector<uintptr_t> mine;
  {
    std::lock_guard lock(g_mu);
    for (auto& [addr, a] : g_allocs)
      if (a.ctx == c) mine.push_back(addr);
  }
  for (uintptr_t addr : mine) {
    if (free_linear(addr) != CUDA_SUCCESS) close_imported(addr, true);  // IPC mappings go with the context too
  }
  release_pool_memory();  // a destroyed context's pool goes with it
  // Pinned host memory the context allocated is unmapped with it (a real
  // driver frees it: reading it afterwards is a segmentation fault).
  std::vector<std::pair<uintptr_t, size_t>> hosts;
  {
    std::lock_guard lock(g_mu);
    for (auto it = g_hosts.begin(); it != g_hosts.end();) {
      if (it->second.owned && it->second.ctx == c) {
        hosts.emplace_back(it->first, align_up(it->second.size, kPageSize));
        it = g_hosts.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto [addr, bytes] : hosts) munmap(reinterpret_cast<void*>(addr), bytes);
}

namespace {

// The allocation holding `addr`, its pages in a memfd: moved there once, with
// its context's queued work done first (a real driver exports in place).
// Returns it with `lock` (on g_mu) held.
CUresult shared_linear(uintptr_t addr, std::unique_lock<std::mutex>& lock, LinearAlloc** out, uintptr_t* base) {
  RangeInfo info;
  lock.lock();
  auto it = find_containing(g_allocs, addr);
  if (it == g_allocs.end() || it->second.imported) return CUDA_ERROR_INVALID_VALUE;
  if (it->second.ipc_fd < 0) {
    info = RangeInfo{it->first, it->second.size, it->second.ctx, it->second.buffer_id, false};
    lock.unlock();
    if (info.ctx && info.ctx->alive) synchronize_context(info.ctx);
    lock.lock();
    it = g_allocs.find(info.base);
    if (it == g_allocs.end() || it->second.buffer_id != info.buffer_id) return CUDA_ERROR_INVALID_VALUE;  // freed meanwhile
  }
  LinearAlloc& a = it->second;
  if (a.ipc_fd < 0) {
    const int fd = memfd_create("nzsim-shared", MFD_CLOEXEC);
    if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
    void* at = reinterpret_cast<void*>(it->first);
    const bool ok = ftruncate(fd, static_cast<off_t>(a.physical)) == 0 &&
                    pwrite(fd, at, a.physical, 0) == static_cast<ssize_t>(a.physical) &&
                    mmap(at, a.physical, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED;
    if (!ok) {
      close(fd);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    a.ipc_fd = fd;
  }
  *out = &a;
  *base = it->first;
  return CUDA_SUCCESS;
}

}  // namespace

CUresult export_linear(uintptr_t addr, IpcExport* out) {
  std::unique_lock<std::mutex> lock(g_mu, std::defer_lock);
  LinearAlloc* a = nullptr;
  uintptr_t base = 0;
  if (CUresult r = shared_linear(addr, lock, &a, &base); r != CUDA_SUCCESS) return r;
  if (!a->ipc_offered) {
    const nz::fdx::Key key = nz::fdx::random_key();
    if (!nz::fdx::offer("nzsim-ipc", key, a->ipc_fd)) return CUDA_ERROR_OUT_OF_MEMORY;
    a->ipc_key = key;
    a->ipc_offered = true;
  }
  *out = IpcExport{base, a->size, a->physical, a->ipc_key};
  return CUDA_SUCCESS;
}

CUresult linear_dmabuf_segment(uintptr_t addr, size_t bytes, DmaSegment* out) {
  std::unique_lock<std::mutex> lock(g_mu, std::defer_lock);
  LinearAlloc* a = nullptr;
  uintptr_t base = 0;
  if (CUresult r = shared_linear(addr, lock, &a, &base); r != CUDA_SUCCESS) return r;
  if (addr + bytes > base + a->physical) return CUDA_ERROR_INVALID_VALUE;
  const int fd = dup(a->ipc_fd);
  if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
  *out = DmaSegment{fd, addr - base, bytes};
  return CUDA_SUCCESS;
}

CUresult import_linear(int fd, const IpcExport& e, uintptr_t* out) {
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  {
    std::lock_guard lock(g_mu);
    for (auto& [addr, a] : g_allocs) {
      if (a.imported && a.ctx == c && a.ipc_key == e.key) {  // opened here before: the same pointer
        ++a.import_refs;
        *out = addr;
        return CUDA_SUCCESS;
      }
    }
  }
  uintptr_t addr = va_allocate(e.physical, 512);
  if (!addr) return CUDA_ERROR_OUT_OF_MEMORY;
  if (mmap(reinterpret_cast<void*>(addr), e.physical, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) ==
      MAP_FAILED) {
    va_release(addr, e.physical);
    return CUDA_ERROR_INVALID_HANDLE;
  }
  std::lock_guard lock(g_mu);
  LinearAlloc a{e.size, e.physical, c, g_next_buffer_id.fetch_add(1)};
  a.imported = true;
  a.import_refs = 1;
  a.ipc_key = e.key;
  g_allocs[addr] = a;
  *out = addr;
  return CUDA_SUCCESS;
}

CUresult close_imported(uintptr_t addr, bool all) {
  size_t physical = 0;
  {
    std::lock_guard lock(g_mu);
    auto it = g_allocs.find(addr);
    if (it == g_allocs.end() || !it->second.imported) return CUDA_ERROR_INVALID_VALUE;
    if (!all && --it->second.import_refs > 0) return CUDA_SUCCESS;
    physical = it->second.physical;
    g_allocs.erase(it);
  }
  va_release(addr, physical);
  return CUDA_SUCCESS;
}

bool find_device_range(uintptr_t addr, RangeInfo* out) {
  {
    std::lock_guard lock(g_mu);
    auto it = find_containing(g_allocs, addr);
    if (it != g_allocs.end()) {
      *out = RangeInfo{it->first, it->second.size, it->second.ctx, it->second.buffer_id, false};
      return true;
    }
  }
  return find_vmm_mapping(addr, out);
}

bool reachable_from_context(Context* ctx, uintptr_t addr, const char** why) {
  if (config().devices <= 1 || ctx == nullptr) return true;
  Context* owner = nullptr;
  bool linear = false;
  {
    std::lock_guard lock(g_mu);
    auto it = find_containing(g_allocs, addr);
    if (it != g_allocs.end()) {
      linear = true;
      owner = it->second.ctx;
    }
  }
  if (linear) {
    if (reaches_linear_memory_of(ctx, owner)) return true;
    if (why) *why = "another device's cuMemAlloc memory, peer access not enabled";
    return false;
  }
  if (vmm_reachable_from(addr, ctx->device, nullptr)) return true;
  if (why) *why = "virtual memory not granted to this device (cuMemSetAccess)";
  return false;
}

bool find_host_range(uintptr_t addr, HostRangeInfo* out) {
  std::lock_guard lock(g_mu);
  auto it = find_containing(g_hosts, addr);
  if (it == g_hosts.end()) return false;
  *out = HostRangeInfo{it->first, it->second.size, it->second.flags};
  return true;
}

bool device_accessible(uintptr_t addr, size_t bytes) {
  if (bytes == 0) return true;
  const uintptr_t last = addr + bytes - 1;
  if (last < addr) return false;
  if (va_contains(addr) && va_contains(last)) return true;
  // Page-locked host memory, one allocation holding the whole span.
  HostRangeInfo h;
  return find_host_range(addr, &h) && last < h.base + std::max<size_t>(h.size, 1);
}

}  // namespace nzsim

using namespace nzsim;

extern "C" {

CUresult CUDAAPI cuMemAlloc(CUdeviceptr* dptr, size_t bytes) {
  NZ_REQUIRE_INIT();
  return allocate(dptr, bytes);
}

CUresult CUDAAPI cuMemAllocManaged(CUdeviceptr* dptr, size_t bytes, unsigned int) {
  NZ_REQUIRE_INIT();
  return allocate(dptr, bytes);
}

CUresult CUDAAPI cuMemAllocPitch(CUdeviceptr* dptr, size_t* pitch, size_t width, size_t height,
                                 unsigned int element_size) {
  NZ_REQUIRE_INIT();
  if (!pitch || width == 0 || height == 0) return CUDA_ERROR_INVALID_VALUE;
  if (element_size != 4 && element_size != 8 && element_size != 16) return CUDA_ERROR_INVALID_VALUE;
  size_t p = align_up(width, 512);
  CUresult r = allocate(dptr, p * height);
  if (r == CUDA_SUCCESS) *pitch = p;
  return r;
}

CUresult CUDAAPI cuMemFree(CUdeviceptr dptr) {
  NZ_REQUIRE_INIT();
  if (dptr == 0) return CUDA_SUCCESS;
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  // Like the real driver, freeing waits for work already queued in the context.
  RangeInfo info;
  if (find_device_range(dptr, &info) && !info.vmm && info.ctx && info.ctx->alive) synchronize_context(info.ctx);
  return free_linear(dptr);
}

CUresult CUDAAPI cuMemAllocAsync(CUdeviceptr* dptr, size_t bytes, CUstream hstream) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(hstream, &s); r != CUDA_SUCCESS) return r;
  // Memory is available at once: stream order is trivially kept. The pool's
  // reserve first, as a real pool reuses completed frees.
  const size_t physical = align_up(bytes, kPageSize);
  if (bytes > 0 && take_from_pool(physical)) {
    CUresult r = allocate(dptr, bytes, true);
    if (r != CUDA_SUCCESS) g_pool_kept.fetch_add(physical);
    return r;
  }
  return allocate(dptr, bytes);
}

CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr dptr, CUstream hstream) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(hstream, &s); r != CUDA_SUCCESS) return r;
  {
    std::lock_guard lock(g_mu);
    if (!g_allocs.count(dptr)) return CUDA_ERROR_INVALID_VALUE;
  }
  WorkItem item;
  item.kind = ItemKind::control;
  item.label = "cuMemFreeAsync";
  item.body = [dptr] { return free_linear(dptr, /*to_pool=*/true); };
  submit(s, std::move(item));
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemGetAddressRange(CUdeviceptr* base, size_t* size, CUdeviceptr dptr) {
  NZ_REQUIRE_INIT();
  RangeInfo info;
  if (!find_device_range(dptr, &info)) return CUDA_ERROR_NOT_FOUND;
  if (base) *base = info.base;
  if (size) *size = info.size;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  NZ_REQUIRE_INIT();
  if (!current_context()) return CUDA_ERROR_INVALID_CONTEXT;
  uint64_t total = config().total_bytes;
  uint64_t used = physical_in_use();
  if (free_bytes) *free_bytes = used >= total ? 0 : total - used;
  if (total_bytes) *total_bytes = total;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemHostAlloc(void** pp, size_t bytes, unsigned int flags) {
  NZ_REQUIRE_INIT();
  if (!pp || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  if (!current_context()) return CUDA_ERROR_INVALID_CONTEXT;
  void* p = mmap(nullptr, align_up(bytes, kPageSize), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  std::lock_guard lock(g_mu);
  g_hosts[reinterpret_cast<uintptr_t>(p)] = HostAlloc{bytes, flags, true, current_context()};
  *pp = p;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAllocHost(void** pp, size_t bytes) { return cuMemHostAlloc(pp, bytes, 0); }

CUresult CUDAAPI cuMemFreeHost(void* p) {
  NZ_REQUIRE_INIT();
  HostAlloc a;
  {
    std::lock_guard lock(g_mu);
    auto it = g_hosts.find(reinterpret_cast<uintptr_t>(p));
    if (it == g_hosts.end() || !it->second.owned) return CUDA_ERROR_INVALID_VALUE;
    a = it->second;
    g_hosts.erase(it);
  }
  munmap(p, align_up(a.size, kPageSize));
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemHostRegister(void* p, size_t bytes, unsigned int flags) {
  NZ_REQUIRE_INIT();
  if (!p || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  if (!current_context()) return CUDA_ERROR_INVALID_CONTEXT;
  auto addr = reinterpret_cast<uintptr_t>(p);
  std::lock_guard lock(g_mu);
  auto it = g_hosts.lower_bound(addr);
  if (it != g_hosts.end() && it->first < addr + bytes) return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
  if (find_containing(g_hosts, addr) != g_hosts.end()) return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
  g_hosts[addr] = HostAlloc{bytes, flags, false};
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemHostUnregister(void* p) {
  NZ_REQUIRE_INIT();
  std::lock_guard lock(g_mu);
  auto it = g_hosts.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_hosts.end() || it->second.owned) return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
  g_hosts.erase(it);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemHostGetDevicePointer(CUdeviceptr* dptr, void* p, unsigned int flags) {
  NZ_REQUIRE_INIT();
  if (!dptr || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  HostRangeInfo info;
  if (!find_host_range(reinterpret_cast<uintptr_t>(p), &info)) return CUDA_ERROR_INVALID_VALUE;
  *dptr = reinterpret_cast<CUdeviceptr>(p);  // unified addressing: the same address
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemHostGetFlags(unsigned int* flags, void* p) {
  NZ_REQUIRE_INIT();
  HostRangeInfo info;
  if (!flags || !find_host_range(reinterpret_cast<uintptr_t>(p), &info)) return CUDA_ERROR_INVALID_VALUE;
  *flags = info.flags;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuPointerGetAttribute(void* data, CUpointer_attribute attribute, CUdeviceptr ptr) {
  NZ_REQUIRE_INIT();
  if (!data) return CUDA_ERROR_INVALID_VALUE;
  RangeInfo dev;
  HostRangeInfo host;
  bool is_dev = find_device_range(ptr, &dev);
  bool is_host = !is_dev && find_host_range(ptr, &host);
  if (!is_dev && !is_host) return CUDA_ERROR_INVALID_VALUE;
  Context* ctx = is_dev ? dev.ctx : current_context();
  switch (attribute) {
    case CU_POINTER_ATTRIBUTE_CONTEXT: *static_cast<CUcontext*>(data) = reinterpret_cast<CUcontext>(ctx); break;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
      *static_cast<unsigned*>(data) = is_dev ? CU_MEMORYTYPE_DEVICE : CU_MEMORYTYPE_HOST;
      break;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *static_cast<CUdeviceptr*>(data) = ptr; break;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER:
      if (is_dev) return CUDA_ERROR_INVALID_VALUE;
      *static_cast<void**>(data) = reinterpret_cast<void*>(ptr);
      break;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: *static_cast<int*>(data) = 1; break;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID: *static_cast<unsigned long long*>(data) = is_dev ? dev.buffer_id : 0; break;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: *static_cast<int*>(data) = 0; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: {
      int owner = ctx ? static_cast<int>(ctx->device) : 0;
      if (is_dev && dev.vmm) vmm_reachable_from(ptr, 0, &owner);
      *static_cast<int*>(data) = owner;
      break;
    }
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
      *static_cast<CUdeviceptr*>(data) = is_dev ? dev.base : host.base;
      break;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE: *static_cast<size_t*>(data) = is_dev ? dev.size : host.size; break;
    case CU_POINTER_ATTRIBUTE_MAPPED: *static_cast<int*>(data) = 1; break;
    // cuMemAlloc memory can be exported (sim_ipc.cpp); VMM and host memory cannot.
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: *static_cast<int*>(data) = is_dev && !dev.vmm; break;
    // cuMemAlloc memory is; virtual memory only if created asking for it.
    case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
      *static_cast<int*>(data) = is_dev && (!dev.vmm || vmm_rdma_capable(ptr));
      break;
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES: *static_cast<unsigned long long*>(data) = 0; break;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE: *static_cast<void**>(data) = nullptr; break;
    default: return CUDA_ERROR_NOT_SUPPORTED;
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuPointerGetAttributes(unsigned int count, CUpointer_attribute* attributes, void** data,
                                        CUdeviceptr ptr) {
  NZ_REQUIRE_INIT();
  if (!attributes || !data) return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < count; ++i) {
    if (!data[i]) continue;
    if (cuPointerGetAttribute(data[i], attributes[i], ptr) != CUDA_SUCCESS) {
      // Unlike cuPointerGetAttribute, unknown pointers yield zeroed values.
      if (attributes[i] == CU_POINTER_ATTRIBUTE_MEMORY_TYPE || attributes[i] == CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL)
        *static_cast<int*>(data[i]) = attributes[i] == CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL ? -2 : 0;
      else if (attributes[i] == CU_POINTER_ATTRIBUTE_CONTEXT)
        *static_cast<CUcontext*>(data[i]) = nullptr;
      else
        *static_cast<uint64_t*>(data[i]) = 0;
    }
  }
  return CUDA_SUCCESS;
}

// SYNC_MEMOPS is the only settable attribute. The driver takes it for
// cuMemAlloc memory and refuses it for virtual memory with
// CUDA_ERROR_NOT_SUPPORTED (UCX and libfabric report exactly that:
// openucx/ucx#9895, ofiwg/libfabric#12853), where the context flag
// CU_CTX_SYNC_MEMOPS is the way (cuCtxSetFlags).
CUresult CUDAAPI cuPointerSetAttribute(const void* value, CUpointer_attribute attribute, CUdeviceptr ptr) {
  NZ_REQUIRE_INIT();
  if (attribute != CU_POINTER_ATTRIBUTE_SYNC_MEMOPS) return CUDA_ERROR_NOT_SUPPORTED;
  if (!value) return CUDA_ERROR_INVALID_VALUE;
  RangeInfo info;
  if (!find_device_range(ptr, &info)) return CUDA_ERROR_INVALID_VALUE;
  return info.vmm ? CUDA_ERROR_NOT_SUPPORTED : CUDA_SUCCESS;
}

__attribute__((visibility("default"))) int nzsim_device_accessible(const void* p, size_t bytes) {
  return device_accessible(reinterpret_cast<uintptr_t>(p), bytes) ? 1 : 0;
}

}  // extern "C"
