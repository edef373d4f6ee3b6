// hot_path_bench.cpp: nanoseconds that the runtime's launch hooks
// (before_launch + after_launch) add to a launch, on the simulator, measured
// around the hook calls only (not the launch itself):
//   - nothing tracked (no tagged ranges at all),
//   - many tracked ranges, the launch touches none of them,
//   - the launch touches a staged range (mutex + event record).
// A benchmark, not a test: prints numbers, asserts nothing.
#include <chrono>
#include <cstdio>

#include "hooked_driver.h"
#include "runtime/runtime.h"

using namespace nz::rt;

namespace {

double time_hooks(const LaunchDesc& d, int iterations) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    before_launch(d);
    after_launch(d, CUDA_SUCCESS);
  }
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / iterations;
}

}  // namespace

int main() {
  test::HookedDriver d;
  const std::string error = d.start(test::test_module_path());
  if (!error.empty() || !active()) {
    std::fprintf(stderr, "hot_path_bench: %s\n", error.empty() ? "runtime inactive" : error.c_str());
    return 1;
  }
  CUfunction f = d.function("sum_u16");
  CUdeviceptr out = d.alloc(64), untracked = d.alloc(4096);
  uint64_t n = 16;
  void* params[] = {&untracked, &n, &out};
  LaunchDesc desc{f, nullptr, params, nullptr, nullptr, false, "cuLaunchKernel"};
  constexpr int kIterations = 200000;
  std::printf("nothing tracked:              %.1f ns per launch\n", time_hooks(desc, kIterations));

  std::vector<CUdeviceptr> weights;
  auto w = test::bf16_weights(1 << 20, 1);
  for (int i = 0; i < 64; ++i) {
    CUdeviceptr p = d.alloc(w.size() * 2);
    d.htod(p, w.data(), w.size() * 2);
    weights.push_back(p);
  }
  Runtime::get().compress_pending(true);
  std::printf("64 ranges tracked, untouched: %.1f ns per launch\n", time_hooks(desc, kIterations));

  void* hit_params[] = {&weights[3], &n, &out};
  LaunchDesc hit{f, nullptr, hit_params, nullptr, nullptr, false, "cuLaunchKernel"};
  before_launch(hit);  // stage it once
  after_launch(hit, CUDA_SUCCESS);
  d.real().base.cuCtxSynchronize();
  std::printf("touches a staged range:       %.1f ns per launch\n", time_hooks(hit, kIterations / 10));
  d.real().base.cuCtxSynchronize();
  for (auto p : weights) d.free(p);
  return 0;
}
