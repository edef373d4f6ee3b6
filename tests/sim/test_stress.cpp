// Several host threads, each with streams and cross-stream event waits.
#include <thread>
#include <vector>

#include "sim_test_util.h"

using namespace nzsim_test;

TEST(Stress, ThreadsStreamsAndEvents) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction add = get_function(m, "add_u32");
  CUcontext c = ctx.get();
  constexpr int kThreads = 4, kRounds = 50;
  constexpr uint64_t kWords = 256;
  std::vector<std::thread> threads;
  std::vector<uint64_t> sums(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ASSERT_EQ(CUDA_SUCCESS, cuCtxSetCurrent(c));
      CUstream a, b;
      ASSERT_EQ(CUDA_SUCCESS, cuStreamCreate(&a, CU_STREAM_NON_BLOCKING));
      ASSERT_EQ(CUDA_SUCCESS, cuStreamCreate(&b, CU_STREAM_NON_BLOCKING));
      CUevent ea, eb;
      ASSERT_EQ(CUDA_SUCCESS, cuEventCreate(&ea, CU_EVENT_DISABLE_TIMING));
      ASSERT_EQ(CUDA_SUCCESS, cuEventCreate(&eb, CU_EVENT_DISABLE_TIMING));
      CUdeviceptr p;
      ASSERT_EQ(CUDA_SUCCESS, cuMemAlloc(&p, kWords * 4));
      ASSERT_EQ(CUDA_SUCCESS, cuMemsetD32Async(p, 0, kWords, a));
      uint64_t n = kWords;
      for (int r = 0; r < kRounds; ++r) {
        // Alternate streams; each waits for the other's previous step, so the
        // read-modify-write kernels never overlap.
        CUstream s = r % 2 ? b : a;
        CUevent prev = r % 2 ? ea : eb;
        CUevent mine = r % 2 ? eb : ea;
        if (r > 0) ASSERT_EQ(CUDA_SUCCESS, cuStreamWaitEvent(s, prev, 0));
        uint32_t v = static_cast<uint32_t>(r + 1);
        void* params[] = {&p, &v, &n};
        ASSERT_EQ(CUDA_SUCCESS, cuLaunchKernel(add, 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
        ASSERT_EQ(CUDA_SUCCESS, cuEventRecord(mine, s));
      }
      ASSERT_EQ(CUDA_SUCCESS, cuStreamSynchronize(a));
      ASSERT_EQ(CUDA_SUCCESS, cuStreamSynchronize(b));
      std::vector<uint32_t> h(kWords);
      ASSERT_EQ(CUDA_SUCCESS, cuMemcpyDtoH(h.data(), p, kWords * 4));
      uint64_t total = 0;
      for (uint32_t x : h) total += x;
      sums[t] = total;
      cuMemFree(p);
      cuEventDestroy(ea);
      cuEventDestroy(eb);
      cuStreamDestroy(a);
      cuStreamDestroy(b);
    });
  }
  for (auto& th : threads) th.join();
  const uint64_t per_word = kRounds * (kRounds + 1) / 2;
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(per_word * kWords, sums[t]) << "thread " << t;
  cuModuleUnload(m);
}
