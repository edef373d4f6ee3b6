#include "runtime/launch_scan.h"

#include <mutex>

#include "runtime/driver_objects.h"
#include "runtime/log.h"

namespace nz::rt {

namespace {

// The sizes of every parameter of `handle`, asked as a CUkernel or as a
// CUfunction; false when the driver does not know it as that kind of handle.
bool query_layout(const void* handle, bool as_kernel, std::vector<uint32_t>& sizes) {
  const auto& api = driver();
  sizes.clear();
  for (size_t i = 0; i < 4096; ++i) {
    size_t offset = 0, size = 0;
    CUresult r = CUDA_ERROR_NOT_SUPPORTED;
    if (as_kernel && api.cuKernelGetParamInfo != nullptr) {
      r = api.cuKernelGetParamInfo(static_cast<CUkernel>(const_cast<void*>(handle)), i, &offset, &size);
    } else if (!as_kernel && api.cuFuncGetParamInfo != nullptr) {
      r = api.cuFuncGetParamInfo(static_cast<CUfunction>(const_cast<void*>(handle)), i, &offset, &size);
    }
    if (r == CUDA_ERROR_INVALID_VALUE) return true;  // past the last parameter
    if (r != CUDA_SUCCESS) return false;
    sizes.push_back(static_cast<uint32_t>(size));
  }
  return false;
}

}  // namespace

void ParamLayoutCache::clear() {
  std::unique_lock lock(mutex_);
  known_.clear();
  failed_.clear();
}

bool ParamLayoutCache::sizes(const LaunchDesc& d, std::vector<uint32_t>& out) {
  const void* key = d.kernel != nullptr ? static_cast<const void*>(d.kernel) : static_cast<const void*>(d.func);
  if (key == nullptr) return false;
  {
    std::shared_lock lock(mutex_);
    auto it = known_.find(key);
    if (it != known_.end()) {
      out = it->second;
      return true;
    }
    if (failed_.count(key) != 0) return false;
  }
  // CUDA 13's runtime launches CUkernel handles (cudaKernel_t) cast to
  // CUfunction that the shim never saw come out of cuLibraryGetKernel: when
  // the handle is not known as what it was taken for, ask the other way.
  std::vector<uint32_t> sizes;
  const bool first_as_kernel = d.kernel != nullptr;
  const bool ok = query_layout(key, first_as_kernel, sizes) || query_layout(key, !first_as_kernel, sizes);
  std::unique_lock lock(mutex_);
  if (!ok) {
    if (failed_.emplace(key, true).second) {
      log(LogLevel::kError,
          "no parameter layout for a kernel launched by {}: every compressed range is staged for its launches",
          d.api != nullptr ? d.api : "?");
    }
    return false;
  }
  out = sizes;
  known_.emplace(key, std::move(sizes));
  return true;
}

}  // namespace nz::rt
