// driver.cpp: see driver.h. Destructors ignore errors: they run on the way
// out, when a failure has already been reported.
#include "driver.h"

#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "nzsim.h"

namespace minifw {

void die_on_driver_error(CUresult result, const char* call) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (cuGetErrorName(result, &name) != CUDA_SUCCESS || name == nullptr) name = "CUDA_ERROR_UNKNOWN_CODE";
  if (cuGetErrorString(result, &text) != CUDA_SUCCESS || text == nullptr) text = "(no description)";
  fmt::print(stderr, "minifw: {} failed: {} {}\n", call, name, text);
  if (result == CUDA_ERROR_OUT_OF_MEMORY) {
    fmt::print(stderr, "minifw: out of device memory\n");
  }
  std::fflush(stderr);
  std::fflush(stdout);
  // _Exit: other host threads and the driver's own threads may be mid-call.
  std::_Exit(result == CUDA_ERROR_OUT_OF_MEMORY ? kExitOutOfMemory : kExitDriverError);
}

void die_out_of_memory(size_t requested_bytes, const char* what) {
  fmt::print(stderr, "minifw: out of device memory: cannot allocate {} bytes for {}\n",
             requested_bytes, what);
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(kExitOutOfMemory);
}

PrimaryContext::PrimaryContext(int ordinal) {
  MINIFW_CHECK(cuInit(0));
  MINIFW_CHECK(cuDeviceGet(&device_, ordinal));
  MINIFW_CHECK(cuDevicePrimaryCtxRetain(&ctx_, device_));
  make_current();
}

PrimaryContext::~PrimaryContext() {
  if (ctx_ != nullptr) cuDevicePrimaryCtxRelease(device_);
}

void PrimaryContext::make_current() const { MINIFW_CHECK(cuCtxSetCurrent(ctx_)); }

Stream::Stream() { MINIFW_CHECK(cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING)); }
Stream::~Stream() {
  if (stream_ != nullptr) cuStreamDestroy(stream_);
}
void Stream::synchronize() const { MINIFW_CHECK(cuStreamSynchronize(stream_)); }

Event::Event() { MINIFW_CHECK(cuEventCreate(&event_, CU_EVENT_DISABLE_TIMING)); }
Event::~Event() {
  if (event_ != nullptr) cuEventDestroy(event_);
}
void Event::record(CUstream stream) const { MINIFW_CHECK(cuEventRecord(event_, stream)); }
void Event::wait_on(CUstream stream) const { MINIFW_CHECK(cuStreamWaitEvent(stream, event_, 0)); }
void Event::synchronize() const { MINIFW_CHECK(cuEventSynchronize(event_)); }

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  MINIFW_CHECK(cuMemAllocHost(&data_, bytes));
}
PinnedBuffer::~PinnedBuffer() {
  if (data_ != nullptr) cuMemFreeHost(data_);
}

Module::Module(const std::string& path, LoadBy how) {
  if (how == LoadBy::path) {
    MINIFW_CHECK(cuModuleLoad(&module_, path.c_str()));
    return;
  }
  // The simulator's image form that names the library file (nzsim.h).
  nzsim_module_ref ref{};
  std::memcpy(ref.magic, NZSIM_MODULE_REF_MAGIC, sizeof ref.magic);
  if (path.size() >= sizeof ref.path) {
    fmt::print(stderr, "minifw: module path too long: {}\n", path);
    std::_Exit(kExitDriverError);
  }
  std::memcpy(ref.path, path.c_str(), path.size() + 1);
  MINIFW_CHECK(cuModuleLoadData(&module_, &ref));
}

Module::~Module() {
  if (module_ != nullptr) cuModuleUnload(module_);
}

CUfunction Module::function(const char* name) const {
  CUfunction f = nullptr;
  const CUresult r = cuModuleGetFunction(&f, module_, name);
  if (r != CUDA_SUCCESS) {
    const std::string call = fmt::format("cuModuleGetFunction({})", name);
    die_on_driver_error(r, call.c_str());
  }
  return f;
}

}  // namespace minifw
