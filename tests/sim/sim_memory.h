// Device allocations (cuMemAlloc family), pinned host memory and the VMM
// registry, and what kind of memory an address is.
#pragma once

#include <cstdint>
#include <vector>

#include "sim_internal.h"
#include "util/fd_exchange.h"

namespace nzsim {

struct Context;

enum class MemKind { device, pinned_host, pageable_host };

MemKind kind_of(uintptr_t addr);

// Frees every cuMemAlloc allocation the context owns (context destroy/reset).
void free_context_allocations(Context* c);

// Device memory of a module's global (linear, zeroed, in the current
// context), and its release at the module's unload.
CUresult allocate_global(size_t bytes, uintptr_t* out);
void free_global(uintptr_t addr);

// Returns the memory the stream-ordered pool kept after cuMemFreeAsync to the
// device: every stream, event and context synchronization does.
void release_pool_memory();

// A linear allocation (cuMemAlloc) or VMM mapping containing `addr`.
struct RangeInfo {
  uintptr_t base = 0;
  size_t size = 0;
  Context* ctx = nullptr;
  uint64_t buffer_id = 0;
  bool vmm = false;
};
bool find_device_range(uintptr_t addr, RangeInfo* out);

// Legacy IPC of cuMemAlloc memory (sim_ipc.cpp holds the handle format).
struct IpcExport {
  uintptr_t base = 0;
  size_t size = 0;      // requested bytes
  size_t physical = 0;  // mapped bytes (page-rounded)
  nz::fdx::Key key{};
};
// Moves the allocation holding `addr` to a memfd (once; waits for its
// context's queued work first) offered to other processes; fills `out`.
CUresult export_linear(uintptr_t addr, IpcExport* out);
// A piece of a dma-buf (sim_dmabuf.cpp): `bytes` at `offset` of the memfd
// `fd` (a duplicate the dma-buf owns: the pages outlive their mappings, as a
// real dma-buf holds its memory until closed).
struct DmaSegment {
  int fd = -1;
  size_t offset = 0;
  size_t bytes = 0;
};
// [addr, addr + bytes) of cuMemAlloc memory as one segment (its pages move
// to a memfd once, as for IPC).
CUresult linear_dmabuf_segment(uintptr_t addr, size_t bytes, DmaSegment* out);
// [addr, addr + bytes) of mapped virtual memory: one segment per mapping it
// crosses; CUDA_ERROR_INVALID_VALUE where a page is unmapped or the physical
// allocations differ in their properties (the driver's rule).
CUresult vmm_dmabuf_segments(uintptr_t addr, size_t bytes, std::vector<DmaSegment>* out);
// Maps `fd` (another process's export `e`) into this process's device
// address space in the current context: the same pointer again if this
// context opened it already (counted).
CUresult import_linear(int fd, const IpcExport& e, uintptr_t* out);
// cuIpcCloseMemHandle: the last close unmaps; `all`: its context is going,
// unmapped whatever the count.
CUresult close_imported(uintptr_t addr, bool all = false);

struct HostRangeInfo {
  uintptr_t base = 0;
  size_t size = 0;
  unsigned flags = 0;
};
bool find_host_range(uintptr_t addr, HostRangeInfo* out);

// Whether a kernel on a GPU reaches [addr, addr + bytes): the device address
// space or one page-locked host allocation (nzsim_device_accessible).
bool device_accessible(uintptr_t addr, size_t bytes);

// VMM lookups (sim_vmm.cpp).
bool find_vmm_mapping(uintptr_t addr, RangeInfo* out);
// False if `addr` is mapped VMM memory that `device` was not granted access
// to (cuMemSetAccess); true otherwise (not VMM memory, or granted). `owner`:
// the device of the mapped physical memory, when it is VMM memory.
bool vmm_reachable_from(uintptr_t addr, CUdevice device, int* owner);
// Whether the physical memory mapped at `addr` was created GPUDirect RDMA
// capable (prop.allocFlags.gpuDirectRDMACapable): what
// CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE answers for virtual memory.
bool vmm_rdma_capable(uintptr_t addr);

// What a kernel or copy running in `ctx` may reach at `addr` (NZSIM_DEVICES
// > 1 only; always true with one device): another device's VMM memory needs
// that device's grant, its cuMemAlloc memory peer access (cuCtxEnablePeerAccess).
// `why` names the refusal.
bool reachable_from_context(Context* ctx, uintptr_t addr, const char** why);

}  // namespace nzsim
