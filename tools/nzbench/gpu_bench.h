// gpu_bench.h: where the GPU benchmark plugs into nzbench (--gpu).
//
// A build with the device codec (src/gpu, meson var nzgpu_dep) links
// gpu_bench_device.cpp: one device session, then per tensor set and per
// --gpu-mb size nz::gpu::run_gpu_benchmark (decode, encode and a
// device-to-device copy of the same size timed in the same run), plus a
// bit-exactness check against the CPU codec. A build without it links
// gpu_bench_none.cpp, which says so.
#pragma once

#include <string>
#include <vector>

#include "bench_types.h"

namespace nzbench {

// Empty when a GPU benchmark can be attempted; otherwise why not.
std::string gpu_bench_unavailable_reason();

enum class GpuBenchStatus {
  kOk,
  kUnavailable,  // no GPU support in this build, no driver, no device, no codec module
  kFailed,       // a driver or codec call failed
};

// Measure the sets of `tensors` on device 0, with `error` when not kOk. A
// verification failure is reported in `out`, not here.
GpuBenchStatus bench_gpu_sets(const Options& opts, const std::vector<BenchTensor>& tensors, GpuReport& out,
                              std::string& error);

}  // namespace nzbench
