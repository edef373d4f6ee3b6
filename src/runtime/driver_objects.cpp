#include "runtime/driver_objects.h"

namespace nz::rt {
namespace {
RuntimeDriverApi g_api{};
}

const RuntimeDriverApi& driver() noexcept { return g_api; }
void set_driver(const RuntimeDriverApi& api) noexcept { g_api = api; }

const char* error_name(CUresult r) noexcept {
  const char* name = nullptr;
  if (g_api.base.cuGetErrorName == nullptr || g_api.base.cuGetErrorName(r, &name) != CUDA_SUCCESS ||
      name == nullptr) {
    return "CUDA_ERROR_?";
  }
  return name;
}

void EventTraits::destroy(CUevent e) { g_api.base.cuEventDestroy(e); }
void StreamTraits::destroy(CUstream s) { g_api.base.cuStreamDestroy(s); }
void DeviceMemoryTraits::destroy(CUdeviceptr p) { g_api.base.cuMemFree(p); }
void PhysicalMemoryTraits::destroy(CUmemGenericAllocationHandle h) { g_api.base.cuMemRelease(h); }
void HostMemoryTraits::destroy(void* p) { g_api.base.cuMemFreeHost(p); }

SharedEvent record_event(CUstream stream) noexcept {
  CUevent e = nullptr;
  if (g_api.base.cuEventCreate(&e, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS) return nullptr;
  UniqueEvent owned(e);
  if (g_api.base.cuEventRecord(e, stream) != CUDA_SUCCESS) return nullptr;
  try {
    return std::make_shared<UniqueEvent>(std::move(owned));
  } catch (...) {
    return nullptr;
  }
}

bool event_done(const SharedEvent& e) noexcept {
  if (!e || !*e) return true;
  return g_api.base.cuEventQuery(e->get()) != CUDA_ERROR_NOT_READY;
}

}  // namespace nz::rt
