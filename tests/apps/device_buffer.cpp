// device_buffer.cpp: allocation failures end the program with the exit
// codes the tests expect.
#include "device_buffer.h"

#include "driver.h"

namespace minifw {

DeviceBuffer::DeviceBuffer(CachingAllocator& allocator, size_t bytes, const char* what) {
  const auto result = allocator.allocate(bytes);
  switch (result.status) {
    case CachingAllocator::Status::ok:
      break;
    case CachingAllocator::Status::out_of_memory:
      die_out_of_memory(bytes, what);
    case CachingAllocator::Status::driver_error:
      die_on_driver_error(result.driver_result, "cuMemAlloc");
  }
  allocator_ = &allocator;
  ptr_ = result.ptr;
  bytes_ = bytes;
}

}  // namespace minifw
