// gpu_bench_none.cpp: the GPU benchmark in a build without the device codec.
#include "gpu_bench.h"

namespace nzbench {

std::string gpu_bench_unavailable_reason() { return "nzbench was not built with GPU support (no nzgpu_dep)"; }

GpuBenchStatus bench_gpu_sets(const Options&, const std::vector<BenchTensor>&, GpuReport&, std::string& error) {
  error = gpu_bench_unavailable_reason();
  return GpuBenchStatus::kUnavailable;
}

}  // namespace nzbench
