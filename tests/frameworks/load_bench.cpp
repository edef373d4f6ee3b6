// load_bench: how long a checkpoint loader's many small host-to-device copies
// into one arena take (run it with and without libneuzip.so preloaded; the
// ratio is what matters: tools/bench-loading.sh). Prints one line:
//   copies=N piece=B ms=T [second_pass_ms=T2]
// With a third argument of 2, the copies are made twice and the second pass
// (pages already touched: no first-touch cost) is timed too.
#include <cuda.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  const size_t copies = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 8192;
  const size_t piece = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 8192;
  const int passes = argc > 3 ? std::atoi(argv[3]) : 1;
  CUdevice dev;
  CUcontext ctx;
  if (cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
      cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  CUdeviceptr arena = 0;
  if (cuMemAlloc(&arena, copies * piece) != CUDA_SUCCESS) return 1;
  std::vector<unsigned char> host(piece, 0x3c);
  double ms[2] = {0, 0};
  for (int pass = 0; pass < passes && pass < 2; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < copies; ++i) {
      if (cuMemcpyHtoD(arena + i * piece, host.data(), piece) != CUDA_SUCCESS) return 1;
    }
    cuCtxSynchronize();
    ms[pass] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  if (passes >= 2) std::printf("copies=%zu piece=%zu ms=%.1f second_pass_ms=%.1f\n", copies, piece, ms[0], ms[1]);
  else std::printf("copies=%zu piece=%zu ms=%.1f\n", copies, piece, ms[0]);
  cuMemFree(arena);
  return 0;
}
