// Run with NZSIM_LAZY=1: work runs only when waited for, so unmapping memory
// that queued work still reads faults deterministically.
#include <atomic>
#include <chrono>
#include <thread>

#include "sim_test_util.h"

using namespace nzsim_test;

TEST(Lazy, CallsBeforeInitFail) {
  CUdevice dev;
  EXPECT_EQ(CUDA_ERROR_NOT_INITIALIZED, cuDeviceGet(&dev, 0));
  CUdeviceptr p;
  EXPECT_EQ(CUDA_ERROR_NOT_INITIALIZED, cuMemAlloc(&p, 4));
}

TEST(Lazy, WorkWaitsForAWaiter) {
  ScopedContext ctx;
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 4));
  CU_OK(cuMemsetD32Async(p, 7, 1, s));
  std::atomic<int> ran{0};
  CU_OK(cuLaunchHostFunc(s, [](void* a) { static_cast<std::atomic<int>*>(a)->store(1); }, &ran));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(0, ran.load());  // nobody waited yet, so nothing ran
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(1, ran.load());
  uint32_t w = 0;
  CU_OK(cuMemcpyDtoH(&w, p, 4));
  EXPECT_EQ(7u, w);
  CU_OK(cuStreamDestroy(s));
}

TEST(Lazy, UnmapBeforeTheReadingStreamIsDone) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction sum = get_function(m, "sum_u32");
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  CUmemGenericAllocationHandle h;
  CU_OK(cuMemCreate(&h, 2 << 20, &prop, 0));
  CUdeviceptr va, out;
  CU_OK(cuMemAddressReserve(&va, 2 << 20, 0, 0, 0));
  CU_OK(cuMemMap(va, 2 << 20, 0, h, 0));
  CUmemAccessDesc d{};
  d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  CU_OK(cuMemSetAccess(va, 2 << 20, &d, 1));
  CU_OK(cuMemAlloc(&out, 8));
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  uint64_t n = 1024;
  void* params[] = {&va, &n, &out};
  CU_OK(cuLaunchKernel(sum, 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  CU_OK(cuMemUnmap(va, 2 << 20));  // the bug: the reader has not run yet
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuStreamSynchronize(s));
  cuMemRelease(h);
  cuMemAddressFree(va, 2 << 20);
}
