// gpu_bench.h: where the GPU benchmark plugs into nzbench (--gpu).
//
// A build with the GPU codec provides gpu_bench.cpp implementing these two
// functions (upload the tensor, time the device decode with events, compare
// against a device-to-device copy in the same run, verify on the host); the
// build without it links gpu_bench_none.cpp, which says so.
#pragma once

#include <string>

#include "bench_types.h"

namespace nzbench {

// Empty when a GPU benchmark can run; otherwise why not.
std::string gpu_bench_unavailable_reason();

// Measure `t` on the device. `out` gets the same keys as the CPU figures
// (decode_gbps_mt = device decode). Returns false with `error` on failure.
bool bench_gpu(const Options& opts, const BenchTensor& t, Figures& out, std::string& error);

}  // namespace nzbench
