// gpu_test_env.h: the device, codec and helpers shared by the GPU codec tests.
//
// One process-wide session (driver + primary context of device 0) and one
// DeviceCodec, whichever backend create() picks: the simulator's host-kernel
// module under tests/sim, or the CUDA kernels on a real GPU.
#pragma once

#include <cuda.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gpu/device_buffer.h"
#include "gpu/device_codec.h"
#include "gpu/device_session.h"
#include "neuzip/neuzip.h"

namespace nz::gpu::test {

class GpuEnv {
 public:
  // Null (with the reason in skip_reason()) when there is no usable device.
  static GpuEnv* get();
  static const std::string& skip_reason();
  // Non-empty when a device exists but DeviceCodec::create failed.
  static const std::string& codec_error();

  const DriverApi& api() const { return session_.api(); }
  DeviceCodec& codec() { return *codec_; }
  CUstream stream() const { return stream_; }
  bool simulator() const { return session_.is_simulator(); }
  // The CUDA backend with emulated kernels on the simulator.
  bool emulated_cuda() const { return emulated_cuda_; }


  DeviceBuffer upload(const std::vector<uint8_t>& bytes);
  std::vector<uint8_t> download(CUdeviceptr ptr, size_t bytes);
  DeviceBuffer alloc(size_t bytes);

  // Runs the device decoder; returns the synchronisation result and the output.
  CUresult decode(const std::vector<uint8_t>& compressed, size_t out_bytes, std::vector<uint8_t>& out,
                  uint32_t& status);
  // Runs the device encoder; `out` is empty when the encoder wrote out_len 0.
  CUresult encode(const std::vector<uint8_t>& input, uint64_t count, const nz_options& opts,
                  std::vector<uint8_t>& out);
  uint64_t hash(CUdeviceptr data, size_t len);

 private:
  bool open(std::string& error);
  std::unique_ptr<DeviceCodec> make_codec(std::string& error);
  DeviceSession session_;
  bool emulated_cuda_ = false;
  std::unique_ptr<DeviceCodec> codec_;
  CUstream stream_ = nullptr;
};

// The CPU codec's answers, for comparison.
std::vector<uint8_t> cpu_compress(const std::vector<uint8_t>& input, uint64_t count, const nz_options& opts,
                                  nz_status& status);
std::vector<uint8_t> cpu_decompress(const std::vector<uint8_t>& compressed, nz_status& status);

#define NZ_REQUIRE_GPU_ENV(env)                                              \
  GpuEnv* env = GpuEnv::get();                                               \
  if (env == nullptr && !GpuEnv::codec_error().empty()) FAIL() << GpuEnv::codec_error(); \
  if (env == nullptr) GTEST_SKIP() << GpuEnv::skip_reason()

}  // namespace nz::gpu::test
