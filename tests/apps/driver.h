// driver.h: error checking and RAII owners for the CUDA driver handles
// minifw uses. minifw talks to the driver API only (no runtime API), like
// the lowest layer of a framework.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <string>

namespace minifw {

// Exit codes, which the tests check.
constexpr int kExitDriverError = 2;
constexpr int kExitOutOfMemory = 3;

// Prints "minifw: <call> failed: <name> <string>" and exits (code 3 for
// CUDA_ERROR_OUT_OF_MEMORY, else 2). Never returns.
[[noreturn]] void die_on_driver_error(CUresult result, const char* call);
[[noreturn]] void die_out_of_memory(size_t requested_bytes, const char* what);

inline void check(CUresult result, const char* call) {
  if (result != CUDA_SUCCESS) die_on_driver_error(result, call);
}

// The call's text is its name in the error message.
#define MINIFW_CHECK(call) ::minifw::check((call), #call)

// The device's primary context, retained for the program's life (as the
// CUDA runtime, hence PyTorch, does). make_current() binds it to the calling
// thread; every host thread that launches must call it.
class PrimaryContext {
 public:
  explicit PrimaryContext(int ordinal);
  ~PrimaryContext();
  PrimaryContext(const PrimaryContext&) = delete;
  PrimaryContext& operator=(const PrimaryContext&) = delete;
  void make_current() const;
  CUcontext get() const { return ctx_; }

 private:
  CUdevice device_ = 0;
  CUcontext ctx_ = nullptr;
};

class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  CUstream get() const { return stream_; }
  void synchronize() const;

 private:
  CUstream stream_ = nullptr;
};

class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  CUevent get() const { return event_; }
  void record(CUstream stream) const;
  void wait_on(CUstream stream) const;  // `stream` waits for this event
  void synchronize() const;

 private:
  CUevent event_ = nullptr;
};

// Page-locked host memory (cuMemAllocHost), the source of async copies.
class PinnedBuffer {
 public:
  explicit PinnedBuffer(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class Module {
 public:
  enum class LoadBy { path, ref_image };
  Module(const std::string& path, LoadBy how);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  CUfunction function(const char* name) const;

 private:
  CUmodule module_ = nullptr;
};

}  // namespace minifw
