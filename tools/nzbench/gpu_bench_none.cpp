// gpu_bench_none.cpp: the GPU benchmark in a build without GPU support.
#include "gpu_bench.h"

namespace nzbench {

std::string gpu_bench_unavailable_reason() { return "nzbench was not built with GPU support"; }

bool bench_gpu(const Options&, const BenchTensor&, Figures&, std::string& error) {
  error = gpu_bench_unavailable_reason();
  return false;
}

}  // namespace nzbench
