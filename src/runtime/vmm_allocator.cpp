#include "runtime/vmm_allocator.h"

#include "runtime/log.h"

namespace nz::rt {

bool VmmAllocator::init(CUdevice device) noexcept {
  const auto& api = driver().base;
  int supported = 0;
  if (api.cuDeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
                               device) != CUDA_SUCCESS ||
      supported == 0) {
    log(LogLevel::kInfo, "virtual memory management unsupported: pass-through");
    return false;
  }
  prop_ = {};
  prop_.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop_.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop_.location.id = device;
  int rdma = 0;
  rdma_flag_.store(api.cuDeviceGetAttribute(&rdma, CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED,
                                            device) == CUDA_SUCCESS &&
                   rdma != 0);
  access_[0] = {};
  access_[0].location = prop_.location;
  access_[0].flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  access_count_ = 1;
  size_t granularity = 0;
  CUresult r = api.cuMemGetAllocationGranularity(&granularity, &prop_,
                                                 CU_MEM_ALLOC_GRANULARITY_RECOMMENDED);
  if (r != CUDA_SUCCESS || granularity == 0) {
    r = api.cuMemGetAllocationGranularity(&granularity, &prop_, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
  }
  if (r != CUDA_SUCCESS || granularity == 0) {
    log(LogLevel::kError, "cuMemGetAllocationGranularity failed ({}): pass-through", error_name(r));
    return false;
  }
  page_ = granularity;
  return true;
}

CUresult VmmAllocator::create(size_t bytes, UniquePhysicalMemory& out) noexcept {
  return create_with(prop_, bytes, out);
}

CUresult VmmAllocator::create_exportable(size_t bytes, UniquePhysicalMemory& out) noexcept {
  CUmemAllocationProp prop = prop_;
  prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  return create_with(prop, bytes, out);
}

CUresult VmmAllocator::create_with(const CUmemAllocationProp& base_prop, size_t bytes,
                                   UniquePhysicalMemory& out) noexcept {
  CUmemAllocationProp prop = base_prop;
  const bool rdma = rdma_flag_.load(std::memory_order_relaxed);
  prop.allocFlags.gpuDirectRDMACapable = rdma ? 1 : 0;
  CUmemGenericAllocationHandle h = 0;
  note_vmm_calls();
  create_calls_.fetch_add(1, std::memory_order_relaxed);
  CUresult r = driver().base.cuMemCreate(&h, bytes, &prop, 0);
  if (rdma && (r == CUDA_ERROR_INVALID_VALUE || r == CUDA_ERROR_NOT_SUPPORTED)) {
    // The attribute said yes and the driver says no: without the flag from
    // now on (cuMemAlloc-like RDMA is then not offered).
    if (rdma_flag_.exchange(false))
      log(LogLevel::kInfo, "cuMemCreate refused gpuDirectRDMACapable ({}): memory neuzip serves is not "
                           "GPUDirect RDMA capable", error_name(r));
    prop.allocFlags.gpuDirectRDMACapable = 0;
    r = driver().base.cuMemCreate(&h, bytes, &prop, 0);
  }
  if (r == CUDA_SUCCESS) out = UniquePhysicalMemory(h);
  return r;
}

CUresult VmmAllocator::map(CUdeviceptr at, size_t bytes, CUmemGenericAllocationHandle handle,
                           size_t offset) noexcept {
  CUresult r = map_without_access(at, bytes, handle, offset);
  if (r != CUDA_SUCCESS) return r;
  r = set_access(at, bytes);
  if (r != CUDA_SUCCESS) driver().base.cuMemUnmap(at, bytes);
  return r;
}

CUresult VmmAllocator::unmap(CUdeviceptr at, size_t bytes) noexcept {
  note_vmm_calls();
  return driver().base.cuMemUnmap(at, bytes);
}

CUresult VmmAllocator::map_without_access(CUdeviceptr at, size_t bytes, CUmemGenericAllocationHandle handle,
                                          size_t offset) noexcept {
  map_calls_.fetch_add(1, std::memory_order_relaxed);
  note_vmm_calls();
  return driver().base.cuMemMap(at, bytes, offset, handle, 0);
}

CUresult VmmAllocator::set_access(CUdeviceptr at, size_t bytes) noexcept {
  note_vmm_calls();
  std::shared_lock lock(access_mu_);
  return driver().base.cuMemSetAccess(at, bytes, access_.data(), access_count_);
}

bool VmmAllocator::granted(CUdevice device) const noexcept {
  std::shared_lock lock(access_mu_);
  for (size_t i = 0; i < access_count_; ++i)
    if (access_[i].location.id == device) return true;
  return false;
}

bool VmmAllocator::grant_device(CUdevice device) noexcept {
  const auto& api = driver().base;
  std::unique_lock lock(access_mu_);
  for (size_t i = 0; i < access_count_; ++i)
    if (access_[i].location.id == device) return true;
  if (access_count_ == access_.size()) return false;
  CUmemAccessDesc peer = access_[0];
  peer.location.id = device;
  access_[access_count_++] = peer;
  std::vector<std::pair<CUdeviceptr, size_t>> ranges;
  {
    std::lock_guard r(reservations_mu_);
    try {
      ranges = reservations_;
    } catch (...) {
      return false;
    }
  }
  // What is mapped now, page by page as the driver answers (the runtime's
  // bookkeeping may lag a mapping made with its lock dropped), granted in
  // spans; a span that an unmap raced with is granted page by page.
  const auto& rt_api = driver();
  bool ok = true;
  auto grant = [&](CUdeviceptr at, size_t bytes) {
    note_vmm_calls();
    if (api.cuMemSetAccess(at, bytes, &peer, 1) == CUDA_SUCCESS) return;
    for (CUdeviceptr p = at; p < at + bytes; p += page_) {
      note_vmm_calls();
      const CUresult r = api.cuMemSetAccess(p, page_, &peer, 1);
      unsigned long long flags = 0;
      // Refused on a page still mapped: a real failure.
      if (r != CUDA_SUCCESS && rt_api.cuMemGetAccess != nullptr &&
          rt_api.cuMemGetAccess(&flags, &access_[0].location, p) == CUDA_SUCCESS)
        ok = false;
    }
  };
  for (const auto& [base, bytes] : ranges) {
    CUdeviceptr span = 0;
    for (CUdeviceptr p = base; p < base + bytes; p += page_) {
      unsigned long long flags = 0;
      const bool mapped = rt_api.cuMemGetAccess == nullptr ||
                          rt_api.cuMemGetAccess(&flags, &access_[0].location, p) == CUDA_SUCCESS;
      if (mapped && span == 0) span = p;
      if (!mapped && span != 0) {
        grant(span, static_cast<size_t>(p - span));
        span = 0;
      }
    }
    if (span != 0) grant(span, static_cast<size_t>(base + bytes - span));
  }
  return ok;
}

bool VmmAllocator::unmaps_across(CUmemGenericAllocationHandle a, CUmemGenericAllocationHandle b) noexcept {
  const auto& api = driver().base;
  CUdeviceptr va = 0;
  if (api.cuMemAddressReserve(&va, 2 * page_, page_, 0, 0) != CUDA_SUCCESS) return false;
  note_vmm_calls(3);
  bool ok = api.cuMemMap(va, page_, 0, a, 0) == CUDA_SUCCESS;
  if (ok && api.cuMemMap(va + page_, page_, 0, b, 0) != CUDA_SUCCESS) {
    api.cuMemUnmap(va, page_);
    ok = false;
  }
  if (ok) {
    note_vmm_calls();
    ok = api.cuMemUnmap(va, 2 * page_) == CUDA_SUCCESS;
    if (ok) {
      // Both gone: each page can be mapped again (a driver that unmapped the
      // first mapping only would refuse the second).
      note_vmm_calls(4);
      const bool first = api.cuMemMap(va, page_, 0, a, 0) == CUDA_SUCCESS;
      const bool second = api.cuMemMap(va + page_, page_, 0, b, 0) == CUDA_SUCCESS;
      ok = first && second;
      // Mapped again, or still mapped from before: either way unmapped now.
      api.cuMemUnmap(va, page_);
      api.cuMemUnmap(va + page_, page_);
    } else {
      // Refused: one call per mapping, as before.
      note_vmm_calls(2);
      api.cuMemUnmap(va, page_);
      api.cuMemUnmap(va + page_, page_);
    }
  }
  api.cuMemAddressFree(va, 2 * page_);
  return ok;
}

bool VmmAllocator::maps_part_of(CUmemGenericAllocationHandle handle) noexcept {
  const auto& api = driver().base;
  CUdeviceptr va = 0;
  note_vmm_calls(2);
  if (api.cuMemAddressReserve(&va, page_, page_, 0, 0) != CUDA_SUCCESS) return false;
  const bool ok = api.cuMemMap(va, page_, 0, handle, 0) == CUDA_SUCCESS;
  if (ok) {
    note_vmm_calls();
    api.cuMemUnmap(va, page_);
  }
  api.cuMemAddressFree(va, page_);
  return ok;
}

CUresult VmmAllocator::allocate(size_t bytes, CUdeviceptr& base,
                                std::vector<CUmemGenericAllocationHandle>& pages) noexcept {
  const auto& api = driver().base;
  const size_t total = round_up(bytes);
  const size_t count = total / page_;
  CUdeviceptr va = 0;
  // One page more than is mapped: nothing else can start at the end, so a
  // one-past-the-end pointer is known to belong to this allocation.
  CUresult r = api.cuMemAddressReserve(&va, total + page_, page_, 0, 0);
  if (r != CUDA_SUCCESS) return r;
  try {
    pages.assign(count, 0);
  } catch (...) {
    api.cuMemAddressFree(va, total + page_);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  for (size_t i = 0; i < count && r == CUDA_SUCCESS; ++i) {
    UniquePhysicalMemory h;
    r = create(page_, h);
    if (r != CUDA_SUCCESS) break;
    map_calls_.fetch_add(1, std::memory_order_relaxed);
    note_vmm_calls();
    r = api.cuMemMap(va + i * page_, page_, 0, h.get(), 0);
    if (r == CUDA_SUCCESS) pages[i] = h.release();
  }
  if (r == CUDA_SUCCESS) {
    try {
      std::lock_guard lock(reservations_mu_);
      reservations_.emplace_back(va, total);
    } catch (...) {
      r = CUDA_ERROR_OUT_OF_MEMORY;
    }
  }
  // After the registration: a grant from now on walks this range too.
  if (r == CUDA_SUCCESS) r = set_access(va, total);
  if (r != CUDA_SUCCESS) {
    forget_reservation(va);
    release_pages(va, pages, 0, count);
    api.cuMemAddressFree(va, total + page_);
    pages.clear();
    return r;
  }
  base = va;
  return CUDA_SUCCESS;
}

void VmmAllocator::release_pages(CUdeviceptr base, std::vector<CUmemGenericAllocationHandle>& pages,
                                 size_t first, size_t count) noexcept {
  const auto& api = driver().base;
  for (size_t i = first; i < first + count && i < pages.size(); ++i) {
    if (pages[i] == 0) continue;
    note_vmm_calls();
    api.cuMemUnmap(base + i * page_, page_);
    api.cuMemRelease(pages[i]);
    pages[i] = 0;
  }
}

void VmmAllocator::forget_reservation(CUdeviceptr base) noexcept {
  std::lock_guard lock(reservations_mu_);
  for (auto it = reservations_.begin(); it != reservations_.end(); ++it) {
    if (it->first != base) continue;
    reservations_.erase(it);
    return;
  }
}

void VmmAllocator::free_address_range(CUdeviceptr base, size_t bytes) noexcept {
  forget_reservation(base);
  driver().base.cuMemAddressFree(base, bytes + page_);  // the guard page of allocate()
}

}  // namespace nz::rt
