// device_buffer.h: RAII ownership of one block of the caching allocator.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <utility>

#include "caching_allocator.h"

namespace minifw {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // Allocates or exits with code 3 (out of memory) / 2 (other driver error).
  DeviceBuffer(CachingAllocator& allocator, size_t bytes, const char* what);
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      allocator_ = std::exchange(other.allocator_, nullptr);
      ptr_ = std::exchange(other.ptr_, 0);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  CUdeviceptr get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  template <typename T>
  T* as() const { return reinterpret_cast<T*>(ptr_); }  // for kernel parameters only
  void reset() {
    if (allocator_ != nullptr && ptr_ != 0) allocator_->free(ptr_);
    allocator_ = nullptr;
    ptr_ = 0;
    bytes_ = 0;
  }

 private:
  CachingAllocator* allocator_ = nullptr;
  CUdeviceptr ptr_ = 0;
  size_t bytes_ = 0;
};

}  // namespace minifw
