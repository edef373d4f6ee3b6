// launch_overhead_bench.cpp: nanoseconds per cuLaunchKernel *call* (not the
// kernel), for a launch that touches nothing compressed. Run it twice:
//   shim_launch_overhead_bench                      (driver only)
//   LD_PRELOAD=libneuzip.so shim_launch_overhead_bench
// Against the tiny test driver the call itself costs a few ns, so the
// difference is the shim's own overhead. Prints one line per route.
#include <cuda.h>
#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, CUstream, void**, void**);

double ns_per_call(LaunchFn fn, long iterations) {
  int arg = 0;
  void* params[] = {&arg};
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < iterations; ++i)
    fn(reinterpret_cast<CUfunction>(0x1000), 1, 1, 1, 32, 1, 1, 0, nullptr, params, nullptr);
  auto end = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(end - start).count() / static_cast<double>(iterations);
}

}  // namespace

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? std::atol(argv[1]) : 20000000;
  if (cuInit(0) != CUDA_SUCCESS) {
    std::fprintf(stderr, "cuInit failed\n");
    return 1;
  }
  const bool preloaded = dlsym(RTLD_DEFAULT, "nz_shim_call_count") != nullptr;
  using ProcFn = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
  auto proc = reinterpret_cast<ProcFn>(dlsym(RTLD_DEFAULT, "cuGetProcAddress_v2"));
  void* via_proc = nullptr;
  if (proc) proc("cuLaunchKernel", &via_proc, CUDA_VERSION, 0, nullptr);

  ns_per_call(&cuLaunchKernel, iterations / 10);  // warm-up
  std::printf("shim %s: direct cuLaunchKernel %.2f ns/call\n", preloaded ? "preloaded" : "absent",
              ns_per_call(&cuLaunchKernel, iterations));
  if (via_proc)
    std::printf("shim %s: cuGetProcAddress cuLaunchKernel %.2f ns/call\n",
                preloaded ? "preloaded" : "absent",
                ns_per_call(reinterpret_cast<LaunchFn>(via_proc), iterations));
  return 0;
}
