#include "runtime/launch_scan.h"

#include <mutex>

#include "runtime/driver_objects.h"
#include "runtime/log.h"

namespace nz::rt {

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
  const auto& api = driver();
  std::vector<uint32_t> sizes;
  bool ok = false;
  for (size_t i = 0; i < 4096; ++i) {
    size_t offset = 0, size = 0;
    CUresult r = CUDA_ERROR_NOT_SUPPORTED;
    if (d.kernel != nullptr && api.cuKernelGetParamInfo != nullptr) {
      r = api.cuKernelGetParamInfo(d.kernel, i, &offset, &size);
    } else if (d.func != nullptr && api.cuFuncGetParamInfo != nullptr) {
      r = api.cuFuncGetParamInfo(d.func, i, &offset, &size);
    }
    if (r == CUDA_ERROR_INVALID_VALUE) {  // past the last parameter
      ok = true;
      break;
    }
    if (r != CUDA_SUCCESS) break;
    sizes.push_back(static_cast<uint32_t>(size));
  }
  std::unique_lock lock(mutex_);
  if (!ok) {
    if (failed_.emplace(key, true).second) {
      log(LogLevel::kInfo, "no parameter layout for a kernel launched by {}: its parameters are not scanned",
          d.api != nullptr ? d.api : "?");
    }
    return false;
  }
  out = sizes;
  known_.emplace(key, std::move(sizes));
  return true;
}

}  // namespace nz::rt
