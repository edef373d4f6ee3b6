// gpu_bench.h: GPU codec throughput on real weights, for nzgpubench and nzbench --gpu.
//
// Tiles the given host bytes to `target_mib` MiB on the device, encodes them
// with the device codec, then times (CUDA events, best of `repeats`) decode,
// encode and a cuMemcpyDtoDAsync of the decompressed size in the same run,
// and checks the round trip by comparing device hashes. On the simulator the
// path is exercised but the numbers mean nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "gpu/device_codec.h"
#include "gpu/driver_api.h"
#include "neuzip/neuzip.h"

namespace nz::gpu {

struct GpuBenchConfig {
  nz_options opts{};     // dtype must match the bytes
  size_t target_mib = 256;
  unsigned repeats = 5;
};

struct GpuBenchResult {
  uint64_t original_bytes = 0;
  uint64_t compressed_bytes = 0;
  double ratio = 0;            // compressed / original
  double decode_gbps = 0;      // decompressed bytes per second / 1e9, best run
  double encode_gbps = 0;      // original bytes per second / 1e9, best run
  double copy_gbps = 0;        // device-to-device copy of original_bytes, best run
  double decode_vs_copy = 0;   // decode_gbps / copy_gbps
  bool round_trip_ok = false;  // device hash of the decoded data equals the input's
  Backend backend = Backend::kCuda;
};

// Needs a current context on `api`. Returns false with `error` on any failure.
bool run_gpu_benchmark(const DriverApi& api, DeviceCodec& codec, const void* host_bytes, size_t host_len,
                       const GpuBenchConfig& config, GpuBenchResult& result, std::string& error);

}  // namespace nz::gpu
