// fw_env.h: what every framework-behaviour case needs: the primary context (as
// the CUDA runtime uses it), the kernel module, weight-like data, device
// hashes, and — when libneuzip.so is preloaded — its C API, found with dlsym
// so the same binary runs with and without neuzip.
#pragma once

#include <cuda.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../../include/neuzip/runtime.h"

namespace fw {

#define CU_OK(call)                                                              \
  do {                                                                           \
    CUresult r_ = (call);                                                        \
    ASSERT_EQ(CUDA_SUCCESS, r_) << #call << " -> " << ::fw::error_name(r_);      \
  } while (0)

std::string error_name(CUresult r);

// bf16 weights of a small normal distribution (they compress to ~0.67).
std::vector<uint8_t> weights(size_t bytes, uint32_t seed);

class Env {
 public:
  static Env& get();  // initialises the driver, primary context and module once
  CUcontext ctx = nullptr;
  CUdevice dev = 0;
  CUmodule mod = nullptr;
  std::string module_path, small_module_path;
  CUfunction fn(const char* name) const;

  // True when libneuzip.so is preloaded and active.
  bool neuzip() const;
  nz_runtime_stats stats() const;
  // Compresses what is tagged (nz_flush) when neuzip is active.
  void flush() const;
  // nz_tag / nz_untag when neuzip is active (a framework declaring its
  // tensors); true when the runtime took the call.
  bool declare(CUdeviceptr p, size_t bytes, int dtype) const;
  bool undeclare(CUdeviceptr p, size_t bytes) const;
  void reload_module();  // after a context reset

 private:
  Env();
};

CUdeviceptr alloc(size_t bytes);
// Host-to-device in pieces of `piece` bytes (a checkpoint loader's bounce buffer).
void upload(CUdeviceptr dst, const std::vector<uint8_t>& data, size_t piece);
// Launches `kernel` with (a, n, out) style params built by the caller, waits, returns *out.
uint64_t launch_and_read(CUfunction f, std::vector<void*> params, CUdeviceptr out, CUstream s = nullptr,
                         CUresult* launch_result = nullptr);
// Queues sum_bytes(p, n) -> *out on `s` without waiting (a stream that may
// be blocked); read_word(out) once it ran.
void queue_sum(CUdeviceptr p, uint64_t n, CUdeviceptr out, CUstream s);
uint64_t read_word(CUdeviceptr out);
// sum_bytes(p, n) on the device.
uint64_t device_hash(CUdeviceptr p, uint64_t n, CUresult* launch_result = nullptr);
uint64_t host_hash(const uint8_t* p, uint64_t n);
size_t free_memory();
// Runs `body` with this process's stderr redirected; returns what was written.
std::string capture_stderr(const std::function<void()>& body);

// A weight: host data and its device copy, loaded with one host-to-device copy.
struct Weight {
  std::vector<uint8_t> host;
  CUdeviceptr dev = 0;
  Weight(size_t bytes, uint32_t seed) : host(weights(bytes, seed)), dev(alloc(bytes)) { upload(dev, host, bytes); }
  ~Weight() { cuMemFree(dev); }
  Weight(const Weight&) = delete;
  Weight& operator=(const Weight&) = delete;
  uint64_t hash() const { return host_hash(host.data(), host.size()); }
};

// With neuzip: at least `bytes` are held compressed.
#define EXPECT_COMPRESSED_AT_LEAST(bytes)                                                             \
  do {                                                                                                \
    if (::fw::Env::get().neuzip()) {                                                                  \
      EXPECT_GE(::fw::Env::get().stats().bytes_original_compressed, static_cast<uint64_t>(bytes))     \
          << "neuzip did not compress the weights: the case would not test anything";                 \
    }                                                                                                 \
  } while (0)

}  // namespace fw
