// vmm_allocator.h: device allocations served from CUDA virtual memory.
//
// cuMemAlloc of at least NEUZIP_MIN_BYTES becomes: reserve a VA range, create
// one physical handle per granule (2 MiB on current GPUs) and map it, then one
// cuMemSetAccess for the whole range. One handle per granule costs one
// create + one map per 2 MiB at allocation time, but lets the runtime release
// exactly the pages of a compressed range later without touching its
// neighbours (a handle can only be freed whole).
#pragma once

#include <cuda.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "runtime/driver_objects.h"

namespace nz::rt {

class VmmAllocator {
 public:
  // Reads the granularity for `device`. False when VMM is unsupported.
  bool init(CUdevice device) noexcept;
  bool ready() const noexcept { return page_ != 0; }
  // Whether its memory can be used with GPUDirect RDMA (a NIC reading it
  // directly: MPI, UCX, NCCL's network plugins), as cuMemAlloc memory can:
  // created with allocFlags.gpuDirectRDMACapable where the device supports
  // that for virtual memory, as PyTorch's expandable segments do.
  bool rdma_capable() const noexcept { return rdma_flag_.load(std::memory_order_relaxed); }
  size_t page_size() const noexcept { return page_; }
  size_t round_up(size_t bytes) const noexcept { return (bytes + page_ - 1) / page_ * page_; }

  // Reserves round_up(bytes) of VA (plus one unmapped guard page after it)
  // and backs every page with its own handle.
  // On failure everything is undone and the error returned.
  CUresult allocate(size_t bytes, CUdeviceptr& base,
                    std::vector<CUmemGenericAllocationHandle>& pages) noexcept;
  // Creates one handle of `bytes` (a multiple of the page size).
  CUresult create(size_t bytes, UniquePhysicalMemory& out) noexcept;
  // The same, exportable as a POSIX file descriptor (memory shared between
  // processes; ipc_export.cpp).
  CUresult create_exportable(size_t bytes, UniquePhysicalMemory& out) noexcept;
  // Maps `bytes` of `handle` from `offset` at `at` and enables read/write access.
  CUresult map(CUdeviceptr at, size_t bytes, CUmemGenericAllocationHandle handle, size_t offset = 0) noexcept;
  CUresult unmap(CUdeviceptr at, size_t bytes) noexcept;
  // A run mapped from several handles: each mapped without access, then one
  // cuMemSetAccess over all of them (the H200's driver sets access across
  // whole mappings, docs/RESULTS.md §6.3; set-access is the costly call).
  CUresult map_without_access(CUdeviceptr at, size_t bytes, CUmemGenericAllocationHandle handle,
                              size_t offset = 0) noexcept;
  // Read/write for the runtime's device and every device granted below.
  CUresult set_access(CUdeviceptr at, size_t bytes) noexcept;
  // Another device may reach the memory served here (the program enabled
  // peer access from a context of `device` to the runtime's): what is mapped
  // now is granted to it at once, and every later mapping grants it too, as
  // cuCtxEnablePeerAccess grants cuMemAlloc memory. VMM memory needs it
  // spelled out (cuMemSetAccess per device); peer access alone does not
  // cover it. False if the driver refused a grant (logged by the caller).
  bool grant_device(CUdevice device) noexcept;
  bool granted(CUdevice device) const noexcept;
  // Whether the driver maps a part of `handle` (its first page, into a
  // scratch reservation): the H200's driver (580, CUDA 13) answers
  // CUDA_ERROR_NOT_SUPPORTED to any mapping that is not the whole handle,
  // whatever cuMemMap's documentation says about offsets.
  bool maps_part_of(CUmemGenericAllocationHandle handle) noexcept;
  // Whether one cuMemUnmap takes down two adjacent mappings of different
  // handles (`a` and `b`, one page each; into a scratch reservation), and
  // really unmapped both (a page can be mapped there again). The
  // documentation asks for "the entire address range that was mapped"
  // without saying whether that may span mappings: asked, not assumed.
  bool unmaps_across(CUmemGenericAllocationHandle a, CUmemGenericAllocationHandle b) noexcept;
  // Unmaps and releases the page handles of pages [first, first + count).
  void release_pages(CUdeviceptr base, std::vector<CUmemGenericAllocationHandle>& pages,
                     size_t first, size_t count) noexcept;
  // Frees what allocate() reserved for `bytes` (= round_up of its request).
  void free_address_range(CUdeviceptr base, size_t bytes) noexcept;

  uint64_t map_calls() const noexcept { return map_calls_.load(std::memory_order_relaxed); }
  // Every cuMemCreate, cuMemMap, cuMemSetAccess and cuMemUnmap made so far.
  uint64_t vmm_calls() const noexcept { return vmm_calls_.load(std::memory_order_relaxed); }
  uint64_t create_calls() const noexcept { return create_calls_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kMaxDevices = 16;
  CUmemAllocationProp prop_{};
  // Read by set_access under a shared lock; grant_device changes it under
  // the exclusive lock and grants what is mapped before letting go, so each
  // range is either granted by the walk or mapped with the new list.
  mutable std::shared_mutex access_mu_;
  std::array<CUmemAccessDesc, kMaxDevices> access_{};  // [0]: the runtime's device
  size_t access_count_ = 1;
  // Every range allocate() reserved (base, mapped bytes): what a grant walks.
  std::mutex reservations_mu_;
  std::vector<std::pair<CUdeviceptr, size_t>> reservations_;
  size_t page_ = 0;
  // Statistics for docs/RUNTIME.md. Atomic: the look-ahead stager maps with
  // the runtime lock dropped (ThreadSanitizer, the random programs).
  std::atomic<uint64_t> map_calls_{0};
  std::atomic<uint64_t> vmm_calls_{0};
  std::atomic<uint64_t> create_calls_{0};  // of which cuMemCreate
  std::atomic<bool> rdma_flag_{false};  // cleared if the driver refuses the flag
  void note_vmm_calls(uint64_t n = 1) noexcept { vmm_calls_.fetch_add(n, std::memory_order_relaxed); }
  void forget_reservation(CUdeviceptr base) noexcept;
  CUresult create_with(const CUmemAllocationProp& prop, size_t bytes, UniquePhysicalMemory& out) noexcept;
};

}  // namespace nz::rt
