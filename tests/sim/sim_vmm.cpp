// The virtual-memory API: reservations in the simulated device address space,
// physical allocations backed by one memfd each, and mappings made with
// mmap(MAP_FIXED | MAP_SHARED) of the memfd at an offset. A new mapping is
// PROT_NONE until cuMemSetAccess; cuMemUnmap puts inaccessible pages back and
// does not wait for queued work (like the real driver).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "sim_cost.h"
#include "sim_memory.h"
#include "sim_stream.h"
#include "sim_va.h"

namespace nzsim {
namespace {

struct Physical {
  int fd = -1;
  size_t size = 0;
  CUmemAllocationProp prop{};
  int refs = 1;  // the handle itself plus one per mapping; guarded by g_mu
  // cuMemImportFromShareableHandle: another process's memory, counted
  // there (each process simulates its own device), not against ours.
  bool imported = false;
};

struct Mapping {
  size_t size = 0;
  Physical* physical = nullptr;
  size_t offset = 0;
  // Per device: cuMemSetAccess grants each device its own access. The host
  // pages carry the widest grant (one address space); kernels and copies of
  // other devices are checked against their own entry (vmm_reachable_from).
  CUmemAccess_flags access[kMaxDevices] = {};
};

// Never destroyed (as sim_memory.cpp's maps): stream workers may still run
// at process exit, after static destructors.
std::mutex& g_mu = *new std::mutex;
std::map<uintptr_t, size_t>& g_reservations = *new std::map<uintptr_t, size_t>;  // base -> size
std::map<uintptr_t, Mapping>& g_mappings = *new std::map<uintptr_t, Mapping>;     // base -> mapping

void unref(Physical* p) {  // g_mu held
  if (--p->refs > 0) return;
  close(p->fd);
  if (!p->imported) release_physical(p->size);
  delete p;
}

bool inside_reservation(uintptr_t addr, size_t size) {
  auto it = g_reservations.upper_bound(addr);
  if (it == g_reservations.begin()) return false;
  --it;
  return addr >= it->first && addr + size <= it->first + it->second;
}

// Mappings fully covering [addr, addr+size) in order; false if there is a hole
// or a mapping straddles an end.
bool covering_mappings(uintptr_t addr, size_t size, std::vector<std::map<uintptr_t, Mapping>::iterator>* out) {
  auto it = g_mappings.find(addr);
  uintptr_t cursor = addr;
  while (cursor < addr + size) {
    if (it == g_mappings.end() || it->first != cursor) return false;
    out->push_back(it);
    cursor += it->second.size;
    ++it;
  }
  return cursor == addr + size;
}

Physical* from_handle(CUmemGenericAllocationHandle h) { return reinterpret_cast<Physical*>(h); }

bool valid_physical(Physical* p) {  // g_mu held; handles are pointers we created
  (void)p;
  return p != nullptr;
}

}  // namespace

bool find_vmm_mapping(uintptr_t addr, RangeInfo* out) {
  std::lock_guard lock(g_mu);
  auto it = g_mappings.upper_bound(addr);
  if (it == g_mappings.begin()) return false;
  --it;
  if (addr >= it->first + it->second.size) return false;
  *out = RangeInfo{it->first, it->second.size, nullptr, 0, true};
  return true;
}

bool vmm_rdma_capable(uintptr_t addr) {
  std::lock_guard lock(g_mu);
  auto it = g_mappings.upper_bound(addr);
  if (it == g_mappings.begin()) return false;
  --it;
  return addr < it->first + it->second.size && it->second.physical->prop.allocFlags.gpuDirectRDMACapable != 0;
}

bool vmm_reachable_from(uintptr_t addr, CUdevice device, int* owner) {
  std::lock_guard lock(g_mu);
  auto it = g_mappings.upper_bound(addr);
  if (it == g_mappings.begin()) return true;
  --it;
  if (addr >= it->first + it->second.size) return true;  // not VMM memory
  if (owner) *owner = it->second.physical->prop.location.id;
  return valid_device(device) && it->second.access[device] != CU_MEM_ACCESS_FLAGS_PROT_NONE;
}

CUresult vmm_dmabuf_segments(uintptr_t addr, size_t bytes, std::vector<DmaSegment>* out) {
  std::lock_guard lock(g_mu);
  auto it = g_mappings.upper_bound(addr);
  if (it == g_mappings.begin()) return CUDA_ERROR_INVALID_VALUE;
  --it;
  const CUmemAllocationProp& first = it->second.physical->prop;
  std::vector<DmaSegment> pieces;
  auto undo = [&pieces] {
    for (const DmaSegment& d : pieces) close(d.fd);
  };
  for (uintptr_t at = addr; at < addr + bytes; ++it) {
    // "The entire address range is backed and mapped", "all the physical
    // allocations ... have identical allocation properties" (cuda.h).
    if (it == g_mappings.end() || it->first > at || at >= it->first + it->second.size) {
      undo();
      return CUDA_ERROR_INVALID_VALUE;
    }
    const CUmemAllocationProp& prop = it->second.physical->prop;
    if (prop.type != first.type || prop.location.type != first.location.type ||
        prop.location.id != first.location.id || prop.requestedHandleTypes != first.requestedHandleTypes ||
        prop.allocFlags.gpuDirectRDMACapable != first.allocFlags.gpuDirectRDMACapable) {
      undo();
      return CUDA_ERROR_INVALID_VALUE;
    }
    const size_t n = std::min<uintptr_t>(addr + bytes, it->first + it->second.size) - at;
    const int fd = dup(it->second.physical->fd);
    if (fd < 0) {
      undo();
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    pieces.push_back(DmaSegment{fd, it->second.offset + (at - it->first), n});
    at += n;
  }
  *out = std::move(pieces);
  return CUDA_SUCCESS;
}

}  // namespace nzsim

using namespace nzsim;

extern "C" {

CUresult CUDAAPI cuMemGetAllocationGranularity(size_t* granularity, const CUmemAllocationProp* prop,
                                               CUmemAllocationGranularity_flags) {
  NZ_REQUIRE_INIT();
  if (!granularity || !prop) return CUDA_ERROR_INVALID_VALUE;
  *granularity = kGranularity;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAddressReserve(CUdeviceptr* ptr, size_t size, size_t alignment, CUdeviceptr, unsigned long long flags) {
  charge(CostedCall::kReserve, 0);
  NZ_REQUIRE_INIT();
  if (!ptr || size == 0 || size % kGranularity != 0 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (alignment == 0) alignment = kGranularity;
  if (alignment & (alignment - 1)) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  uintptr_t addr = va_allocate(size, std::max(alignment, kGranularity));
  if (!addr) return CUDA_ERROR_OUT_OF_MEMORY;
  std::lock_guard lock(g_mu);
  g_reservations[addr] = size;
  *ptr = addr;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAddressFree(CUdeviceptr ptr, size_t size) {
  NZ_REQUIRE_INIT();
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  {
    std::lock_guard lock(g_mu);
    auto it = g_reservations.find(ptr);
    if (it == g_reservations.end() || it->second != size) return CUDA_ERROR_INVALID_VALUE;
    auto m = g_mappings.lower_bound(ptr);
    if (m != g_mappings.end() && m->first < ptr + size) return CUDA_ERROR_INVALID_VALUE;  // still mapped
    g_reservations.erase(it);
  }
  va_release(ptr, size);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle* handle, size_t size, const CUmemAllocationProp* prop,
                             unsigned long long flags) {
  charge(CostedCall::kCreate, size);
  NZ_REQUIRE_INIT();
  if (!handle || !prop || flags != 0 || size == 0 || size % kGranularity != 0) return CUDA_ERROR_INVALID_VALUE;
  if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED) return CUDA_ERROR_INVALID_VALUE;
  if (prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(prop->location.id)) return CUDA_ERROR_INVALID_DEVICE;
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  if (!try_reserve_physical(size)) return CUDA_ERROR_OUT_OF_MEMORY;
  int fd = memfd_create("nzsim-physical", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) {
    if (fd >= 0) close(fd);
    release_physical(size);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  auto* p = new Physical;
  p->fd = fd;
  p->size = size;
  p->prop = *prop;
  *handle = reinterpret_cast<CUmemGenericAllocationHandle>(p);
  log_debug("cuMemCreate {} bytes -> handle {}", size, static_cast<void*>(p));
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemRelease(CUmemGenericAllocationHandle handle) {
  NZ_REQUIRE_INIT();
  std::lock_guard lock(g_mu);
  Physical* p = from_handle(handle);
  if (!valid_physical(p)) return CUDA_ERROR_INVALID_VALUE;
  unref(p);  // freed once the last mapping is gone too
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                          unsigned long long flags) {
  charge(CostedCall::kMap, size);
  NZ_REQUIRE_INIT();
  if (flags != 0 || size == 0 || ptr % kGranularity || size % kGranularity || offset % kGranularity)
    return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  std::lock_guard lock(g_mu);
  Physical* p = from_handle(handle);
  if (!valid_physical(p)) return CUDA_ERROR_INVALID_HANDLE;
  if (offset + size > p->size) return CUDA_ERROR_INVALID_VALUE;
  // The H200's driver (580, CUDA 13; driverprobe, 2026-12-04) maps whole
  // handles only: a slice, even at offset 0, is CUDA_ERROR_NOT_SUPPORTED.
  if ((offset != 0 || size != p->size) && !config().map_offsets) return CUDA_ERROR_NOT_SUPPORTED;
  if (!inside_reservation(ptr, size)) return CUDA_ERROR_INVALID_VALUE;
  auto next = g_mappings.lower_bound(ptr);
  if (next != g_mappings.end() && next->first < ptr + size) return CUDA_ERROR_INVALID_VALUE;
  if (next != g_mappings.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.size > ptr) return CUDA_ERROR_INVALID_VALUE;
  }
  void* m = mmap(reinterpret_cast<void*>(ptr), size, PROT_NONE, MAP_SHARED | MAP_FIXED, p->fd,
                 static_cast<off_t>(offset));
  if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  ++p->refs;
  g_mappings[ptr] = Mapping{size, p, offset, {}};
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemUnmap(CUdeviceptr ptr, size_t size) {
  charge(CostedCall::kUnmap, size);
  NZ_REQUIRE_INIT();
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  std::lock_guard lock(g_mu);
  std::vector<std::map<uintptr_t, Mapping>::iterator> cover;
  if (size == 0 || !covering_mappings(ptr, size, &cover)) return CUDA_ERROR_INVALID_VALUE;
  // Whether the real driver unmaps several whole mappings in one call is
  // not documented either way: both answers can be simulated.
  if (cover.size() > 1 && !config().unmap_across) return CUDA_ERROR_INVALID_VALUE;
  va_make_inaccessible(ptr, size);  // no wait for queued work: readers still in flight fault
  for (auto it : cover) {
    unref(it->second.physical);
    g_mappings.erase(it);
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc* desc, size_t count) {
  charge(CostedCall::kAccess, size);
  NZ_REQUIRE_INIT();
  if (!desc || count == 0 || size == 0) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  for (size_t i = 0; i < count; ++i) {
    if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(desc[i].location.id)) return CUDA_ERROR_INVALID_DEVICE;
  }
  std::lock_guard lock(g_mu);
  // The range may start or end inside a mapping, but must be fully mapped.
  auto it = g_mappings.upper_bound(ptr);
  if (it == g_mappings.begin()) return CUDA_ERROR_INVALID_VALUE;
  --it;
  uintptr_t cursor = ptr;
  std::vector<Mapping*> touched;
  while (cursor < ptr + size) {
    if (it == g_mappings.end() || it->first > cursor || it->first + it->second.size <= cursor)
      return CUDA_ERROR_INVALID_VALUE;
    touched.push_back(&it->second);
    cursor = it->first + it->second.size;
    ++it;
  }
  // Devices not named keep their access; the host pages take the widest
  // grant of the first mapping touched (a range is granted alike throughout).
  CUmemAccess_flags access[kMaxDevices];
  std::copy(std::begin(touched.front()->access), std::end(touched.front()->access), access);
  for (size_t i = 0; i < count; ++i) access[desc[i].location.id] = desc[i].flags;
  CUmemAccess_flags widest = CU_MEM_ACCESS_FLAGS_PROT_NONE;
  for (CUmemAccess_flags f : access)
    if (f == CU_MEM_ACCESS_FLAGS_PROT_READWRITE || (f == CU_MEM_ACCESS_FLAGS_PROT_READ && widest == CU_MEM_ACCESS_FLAGS_PROT_NONE))
      widest = f;
  int prot = widest == CU_MEM_ACCESS_FLAGS_PROT_READWRITE ? PROT_READ | PROT_WRITE
             : widest == CU_MEM_ACCESS_FLAGS_PROT_READ    ? PROT_READ
                                                          : PROT_NONE;
  if (mprotect(reinterpret_cast<void*>(ptr), size, prot) != 0) return CUDA_ERROR_INVALID_VALUE;
  for (Mapping* m : touched)
    for (size_t i = 0; i < count; ++i) m->access[desc[i].location.id] = desc[i].flags;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemGetAccess(unsigned long long* flags, const CUmemLocation* location, CUdeviceptr ptr) {
  NZ_REQUIRE_INIT();
  if (!flags || !location) return CUDA_ERROR_INVALID_VALUE;
  if (location->type != CU_MEM_LOCATION_TYPE_DEVICE || !valid_device(location->id)) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard lock(g_mu);
  auto it = g_mappings.upper_bound(ptr);
  if (it == g_mappings.begin()) return CUDA_ERROR_INVALID_VALUE;
  --it;
  if (ptr >= it->first + it->second.size) return CUDA_ERROR_INVALID_VALUE;
  *flags = it->second.access[location->id];
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp* prop, CUmemGenericAllocationHandle handle) {
  NZ_REQUIRE_INIT();
  if (!prop) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(g_mu);
  Physical* p = from_handle(handle);
  if (!valid_physical(p)) return CUDA_ERROR_INVALID_VALUE;
  *prop = p->prop;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemRetainAllocationHandle(CUmemGenericAllocationHandle* handle, void* addr) {
  NZ_REQUIRE_INIT();
  if (!handle) return CUDA_ERROR_INVALID_VALUE;
  auto a = reinterpret_cast<uintptr_t>(addr);
  std::lock_guard lock(g_mu);
  auto it = g_mappings.upper_bound(a);
  if (it == g_mappings.begin()) return CUDA_ERROR_INVALID_VALUE;
  --it;
  if (a >= it->first + it->second.size) return CUDA_ERROR_INVALID_VALUE;
  ++it->second.physical->refs;
  *handle = reinterpret_cast<CUmemGenericAllocationHandle>(it->second.physical);
  return CUDA_SUCCESS;
}

// A POSIX file descriptor only, and only for a handle created asking for one
// (prop.requestedHandleTypes), as the driver requires: the memfd itself,
// duplicated. The importer maps the same pages.
CUresult CUDAAPI cuMemExportToShareableHandle(void* shareable, CUmemGenericAllocationHandle handle,
                                              CUmemAllocationHandleType type, unsigned long long flags) {
  NZ_REQUIRE_INIT();
  if (!shareable || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_NOT_SUPPORTED;
  std::lock_guard lock(g_mu);
  Physical* p = from_handle(handle);
  if (!valid_physical(p)) return CUDA_ERROR_INVALID_HANDLE;
  if ((p->prop.requestedHandleTypes & CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) == 0) return CUDA_ERROR_INVALID_VALUE;
  const int fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
  *static_cast<int*>(shareable) = fd;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemImportFromShareableHandle(CUmemGenericAllocationHandle* handle, void* os_handle,
                                                CUmemAllocationHandleType type) {
  NZ_REQUIRE_INIT();
  if (!handle) return CUDA_ERROR_INVALID_VALUE;
  if (type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_NOT_SUPPORTED;
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(os_handle));
  struct stat st{};
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size % kGranularity != 0)
    return CUDA_ERROR_INVALID_VALUE;
  const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);  // the caller closes its own
  if (copy < 0) return CUDA_ERROR_OUT_OF_MEMORY;
  Context* c = current_context();
  auto* p = new Physical;
  p->fd = copy;
  p->size = static_cast<size_t>(st.st_size);
  p->prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  p->prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  p->prop.location.id = c ? c->device : 0;
  p->prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  p->imported = true;
  *handle = reinterpret_cast<CUmemGenericAllocationHandle>(p);
  return CUDA_SUCCESS;
}

}  // extern "C"
