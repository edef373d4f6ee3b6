// device_buffer.h: RAII for cuMemAlloc'ed device memory through a DriverApi.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <utility>

#include "gpu/driver_api.h"

namespace nz::gpu {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    DeviceBuffer t(std::move(o));
    swap(t);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr_ != 0) api_->cuMemFree(ptr_);
  }

  // Allocates at least one byte (cuMemAlloc rejects 0).
  CUresult allocate(const DriverApi& api, size_t bytes) {
    DeviceBuffer fresh;
    fresh.api_ = &api;
    CUresult r = api.cuMemAlloc(&fresh.ptr_, bytes ? bytes : 1);
    if (r != CUDA_SUCCESS) return r;
    fresh.bytes_ = bytes;
    swap(fresh);
    return CUDA_SUCCESS;
  }

  CUdeviceptr get() const { return ptr_; }
  // Gives up ownership without freeing (for memory of a context that died).
  CUdeviceptr release() {
    CUdeviceptr p = ptr_;
    ptr_ = 0;
    bytes_ = 0;
    return p;
  }
  size_t size() const { return bytes_; }

 private:
  void swap(DeviceBuffer& o) noexcept {
    std::swap(api_, o.api_);
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
  }
  const DriverApi* api_ = nullptr;
  CUdeviceptr ptr_ = 0;
  size_t bytes_ = 0;
};

}  // namespace nz::gpu
