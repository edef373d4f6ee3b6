#include "gpu/device_session.h"

#include <fmt/format.h>

namespace nz::gpu {

DeviceSession::~DeviceSession() {
  if (retained_) api_.cuDevicePrimaryCtxRelease(device_);
}

bool DeviceSession::open(std::string& error) {
  if (!load_driver_api(api_, error)) return false;
  CUresult r = api_.cuInit(0);
  if (r == CUDA_SUCCESS) r = api_.cuDeviceGet(&device_, 0);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("no CUDA device: {}", describe(api_, r));
    return false;
  }
  char name[256] = {};
  if (api_.cuDeviceGetName(name, sizeof(name) - 1, device_) == CUDA_SUCCESS) name_ = name;
  CUcontext ctx = nullptr;
  r = api_.cuDevicePrimaryCtxRetain(&ctx, device_);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("cannot retain the primary context: {}", describe(api_, r));
    return false;
  }
  retained_ = true;
  r = api_.cuCtxSetCurrent(ctx);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("cannot make the context current: {}", describe(api_, r));
    return false;
  }
  return true;
}

}  // namespace nz::gpu
