// pointer_queries.cpp: memory the runtime serves with VMM must answer pointer
// queries as the cuMemAlloc memory the program asked for: the allocation's
// base and requested size (not one 2 MiB mapping, and also over compressed,
// unmapped pages), device memory of our context, no VMM handle. Triton's
// launcher queries every pointer argument and refuses a launch on failure;
// NCCL and UCX choose their transport from these answers.
#include <atomic>

#include "runtime/runtime.h"

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

namespace {

template <typename Map>
const typename Map::Entry* lookup(const Map& map, CUdeviceptr p,
                                  std::shared_ptr<const typename Map::Snapshot>& keep) noexcept {
  if (map.empty()) return nullptr;
  keep = map.snapshot();
  const auto* e = Map::find(*keep, p);
  return e != nullptr && p < e->value->base + e->value->requested ? e : nullptr;
}

}  // namespace

bool Runtime::address_range(CUdeviceptr p, CUdeviceptr* base, size_t* size) noexcept {
  std::shared_ptr<const RangeMap<AllocationInfo>::Snapshot> keep;
  const auto* e = lookup(allocation_info_, p, keep);
  if (e == nullptr) return false;
  if (base != nullptr) *base = e->value->base;
  if (size != nullptr) *size = e->value->requested;
  return true;
}

bool Runtime::is_managed(CUdeviceptr p) noexcept {
  if (allocation_info_.empty()) return false;
  const auto snapshot = allocation_info_.snapshot();
  return RangeMap<AllocationInfo>::find(*snapshot, p) != nullptr;
}

bool Runtime::pointer_attribute(void* data, CUpointer_attribute attribute, CUdeviceptr p, CUresult* result) noexcept {
  if (data == nullptr) return false;
  std::shared_ptr<const RangeMap<AllocationInfo>::Snapshot> keep;
  const auto* e = lookup(allocation_info_, p, keep);
  if (e == nullptr) return false;
  const AllocationInfo& a = *e->value;
  *result = CUDA_SUCCESS;
  switch (attribute) {
    case CU_POINTER_ATTRIBUTE_CONTEXT: *static_cast<CUcontext*>(data) = a.context; return true;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: *static_cast<unsigned*>(data) = CU_MEMORYTYPE_DEVICE; return true;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *static_cast<CUdeviceptr*>(data) = p; return true;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER: *result = CUDA_ERROR_INVALID_VALUE; return true;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: *static_cast<int*>(data) = 1; return true;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID: *static_cast<unsigned long long*>(data) = a.buffer_id; return true;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: *static_cast<int*>(data) = 0; return true;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *static_cast<int*>(data) = a.device_ordinal; return true;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: *static_cast<CUdeviceptr*>(data) = a.base; return true;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE: *static_cast<size_t*>(data) = a.requested; return true;
    case CU_POINTER_ATTRIBUTE_MAPPED: *static_cast<int*>(data) = 1; return true;
    // As cuMemAlloc memory where the device allows it (vmm_allocator.h).
    case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE: *static_cast<int*>(data) = vmm_.rdma_capable(); return true;
    // As cuMemAlloc memory: cuIpcGetMemHandle shares it (ipc_export.cpp),
    // where the driver exports virtual memory as a file descriptor.
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: {
      int supported = 0;
      *static_cast<int*>(data) =
          driver().cuMemExportToShareableHandle != nullptr &&
          driver().base.cuDeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED,
                                             a.device_ordinal) == CUDA_SUCCESS &&
          supported != 0;
      return true;
    }
    // As for cuMemAlloc memory: no shareable handle types, no pool.
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES: *static_cast<unsigned long long*>(data) = 0; return true;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE: *static_cast<void**>(data) = nullptr; return true;
    default: return false;  // the driver answers (its answer for a VMM range)
  }
}

// MPI, UCX and libfabric (aws-ofi-nccl over EFA) set SYNC_MEMOPS on a buffer
// before a NIC reads it, so that a synchronous copy into it has landed when
// the copy returns. The driver refuses the attribute for virtual memory
// (CUDA_ERROR_NOT_SUPPORTED: libfabric then fails the transfer) and offers
// the context flag CU_CTX_SYNC_MEMOPS instead, a superset: every
// synchronous memory operation of the context synchronises.
bool Runtime::set_pointer_attribute(const void* value, CUpointer_attribute attribute, CUdeviceptr p,
                                    CUresult* result) noexcept {
  if (attribute != CU_POINTER_ATTRIBUTE_SYNC_MEMOPS) return false;  // the driver answers (nothing else is settable)
  std::shared_ptr<const RangeMap<AllocationInfo>::Snapshot> keep;
  const auto* e = lookup(allocation_info_, p, keep);
  if (e == nullptr) return false;
  if (value == nullptr) {
    *result = CUDA_ERROR_INVALID_VALUE;
    return true;
  }
  *result = CUDA_SUCCESS;
  if (*static_cast<const unsigned*>(value) == 0) return true;  // never promised more than asked
  const auto& api = driver();
  if (api.cuCtxGetFlags == nullptr || api.cuCtxSetFlags == nullptr) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      log(LogLevel::kError, "CU_POINTER_ATTRIBUTE_SYNC_MEMOPS on memory neuzip serves needs cuCtxSetFlags "
                            "(CUDA 12.1 drivers and later); refused");
    *result = CUDA_ERROR_NOT_SUPPORTED;
    return true;
  }
  CUcontext current = nullptr;
  const CUcontext owner = e->value->context;
  api.base.cuCtxGetCurrent(&current);
  if (current != owner && api.base.cuCtxSetCurrent(owner) != CUDA_SUCCESS) {
    *result = CUDA_ERROR_INVALID_CONTEXT;
    return true;
  }
  unsigned flags = 0;
  *result = api.cuCtxGetFlags(&flags);
  if (*result == CUDA_SUCCESS && (flags & CU_CTX_SYNC_MEMOPS) == 0) *result = api.cuCtxSetFlags(flags | CU_CTX_SYNC_MEMOPS);
  if (current != owner) api.base.cuCtxSetCurrent(current);
  static std::atomic<bool> said{false};
  if (*result == CUDA_SUCCESS && !said.exchange(true))
    log(LogLevel::kInfo, "CU_POINTER_ATTRIBUTE_SYNC_MEMOPS asked for memory neuzip serves: set for its whole context "
                         "(CU_CTX_SYNC_MEMOPS), as the driver offers for virtual memory");
  return true;
}

// The program sizes caches from this: count what it loaded as compressed, and keep room to stage what one launch
// touching the largest allocations needs (three of them: a fused attention or
// MLP kernel reads several weights), less what is staged already (evictable).
// Programs poll it (memory samplers, vLLM's profiling): it scans for loaded
// ranges only when something was tagged since the last scan, and never waits
// for the runtime lock once the room was computed (a staging holds it for its
// VMM calls): a busy lock answers with the room computed last.
void Runtime::adjust_free_memory(size_t* free, size_t) noexcept {
  if (free == nullptr) return;
  if (stats_.bytes_compressible.get() == 0 && stats_.bytes_original_compressed.get() == 0) return;
  // Asked in another device's context, the figure is that device's.
  CUcontext current = nullptr;
  CUdevice device = 0;
  if (from_other_device(&current, &device)) return;
  if (stats_.bytes_compressible.get() > stats_.bytes_original_compressed.get()) {
    const uint64_t tagged = units_tagged_.load(std::memory_order_relaxed);
    if (loaded_scan_mark_.exchange(tagged, std::memory_order_relaxed) != tagged) {
      const uint64_t before = stats_.bytes_original_compressed.get();
      compress_loaded();
      // The caller's figure predates what was just released.
      size_t total = 0;
      if (stats_.bytes_original_compressed.get() != before) driver().base.cuMemGetInfo(free, &total);
    }
  }
  if (stats_.bytes_original_compressed.get() == 0) return;
  size_t need = 0;
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock() && !free_memory_need_known_.load(std::memory_order_acquire)) lock.lock();
  if (lock.owns_lock()) {
    const size_t reserve = staging_reserve();
    const size_t staged = pool_.in_use_bytes();
    need = reserve > staged ? reserve - staged : 0;
    free_memory_need_.store(need, std::memory_order_relaxed);
    free_memory_need_known_.store(true, std::memory_order_release);
  } else {
    need = free_memory_need_.load(std::memory_order_relaxed);
  }
  *free = *free > need ? *free - need : 0;
}

size_t Runtime::staging_reserve() const noexcept {
  size_t top[3] = {0, 0, 0};
  for (const auto& [base, a] : allocations_) {
    size_t v = a->largest_extent;
    for (auto& t : top) {
      if (v > t) std::swap(v, t);
    }
  }
  const size_t by_allocations = top[0] + top[1] + top[2];
  const size_t reserve = std::max(by_allocations, launch_staging_peak_);
  return std::min<size_t>(reserve, stats_.bytes_original_compressed.get());
}

}  // namespace nz::rt
