// device_codec.cpp: picks the backend for the current context's device. The
// simulated driver names its devices "nzsim..."; everything else is a GPU.
#include <fmt/format.h>

#include <cstring>

#include "gpu/backends.h"
#include "gpu/device_codec.h"

namespace nz::gpu {

std::unique_ptr<DeviceCodec> DeviceCodec::create(const DriverApi& api, std::string& error) {
  CUdevice device = 0;
  CUresult r = api.cuCtxGetDevice(&device);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("no current context: {}", describe(api, r));
    return nullptr;
  }
  char name[256] = {};
  r = api.cuDeviceGetName(name, sizeof(name) - 1, device);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("cuDeviceGetName failed: {}", describe(api, r));
    return nullptr;
  }
  if (std::strncmp(name, "nzsim", 5) == 0) return create_sim_codec(api, error);
  return create_cuda_codec(api, device, error);
}

}  // namespace nz::gpu
