// Stream ordering, events, legacy vs per-thread default stream, callbacks.
#include <atomic>
#include <thread>
#include <vector>

#include "sim_test_util.h"

using namespace nzsim_test;

extern "C" CUresult CUDAAPI cuStreamQuery_ptsz(CUstream);

namespace {

struct Kernels {
  CUmodule mod = load_test_module();
  CUfunction sleep_us = get_function(mod, "sleep_us");
  CUfunction fill = get_function(mod, "fill_u32");
  CUfunction add = get_function(mod, "add_u32");
  ~Kernels() { cuModuleUnload(mod); }
};

CUresult launch_sleep(const Kernels& k, unsigned us, CUstream s) {
  void* params[] = {&us};
  return cuLaunchKernel(k.sleep_us, 1, 1, 1, 1, 1, 1, 0, s, params, nullptr);
}

CUresult launch_fill(const Kernels& k, CUdeviceptr p, uint32_t v, uint64_t n, CUstream s) {
  void* params[] = {&p, &v, &n};
  return cuLaunchKernel(k.fill, 1, 1, 1, 1, 1, 1, 0, s, params, nullptr);
}

}  // namespace

TEST(Streams, InOrderAndQuery) {
  ScopedContext ctx;
  Kernels k;
  CUstream s;
  CU_OK(cuStreamCreate(&s, 0));
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 4 * 1024));
  CU_OK(launch_sleep(k, 50000, s));
  CU_OK(launch_fill(k, p, 5, 1024, s));
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(s));
  CU_OK(cuStreamSynchronize(s));
  CU_OK(cuStreamQuery(s));
  uint32_t v = 0;
  CU_OK(cuMemcpyDtoH(&v, p + 4 * 1023, 4));
  EXPECT_EQ(5u, v);
  unsigned flags = 9;
  CU_OK(cuStreamGetFlags(s, &flags));
  EXPECT_EQ(0u, flags);
  CUcontext c;
  CU_OK(cuStreamGetCtx(s, &c));
  EXPECT_EQ(ctx.get(), c);
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuMemFree(p));
}

TEST(Streams, EventsAndElapsedTime) {
  ScopedContext ctx;
  Kernels k;
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUevent a, b, untimed;
  CU_OK(cuEventCreate(&a, 0));
  CU_OK(cuEventCreate(&b, 0));
  CU_OK(cuEventCreate(&untimed, CU_EVENT_DISABLE_TIMING));
  CU_OK(cuEventQuery(a));  // never recorded: complete
  CU_OK(cuEventRecord(a, s));
  CU_OK(launch_sleep(k, 30000, s));
  CU_OK(cuEventRecord(b, s));
  CU_OK(cuEventRecord(untimed, s));
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuEventQuery(b));
  float ms = 0;
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuEventElapsedTime(&ms, a, b));
  CU_OK(cuEventSynchronize(b));
  CU_OK(cuEventElapsedTime(&ms, a, b));
  EXPECT_GT(ms, 0.0f);
  EXPECT_EQ(CUDA_ERROR_INVALID_HANDLE, cuEventElapsedTime(&ms, a, untimed));
  CU_OK(cuEventDestroy(a));
  CU_OK(cuEventDestroy(b));
  CU_OK(cuEventDestroy(untimed));
  CU_OK(cuStreamDestroy(s));
}

TEST(Streams, WaitEventOrdersAcrossStreams) {
  ScopedContext ctx;
  Kernels k;
  CUstream s1, s2;
  CU_OK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 4));
  CUevent e;
  CU_OK(cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
  CU_OK(launch_sleep(k, 30000, s1));
  CU_OK(launch_fill(k, p, 1, 1, s1));
  CU_OK(cuEventRecord(e, s1));
  CU_OK(cuStreamWaitEvent(s2, e, 0));
  CU_OK(launch_fill(k, p, 2, 1, s2));  // must run after s1's fill
  CU_OK(cuStreamSynchronize(s2));
  uint32_t v;
  CU_OK(cuMemcpyDtoH(&v, p, 4));
  EXPECT_EQ(2u, v);
  CU_OK(cuEventDestroy(e));
  CU_OK(cuStreamDestroy(s1));
  CU_OK(cuStreamDestroy(s2));
}

TEST(Streams, LegacyDefaultStreamSynchronisesWithBlockingStreams) {
  ScopedContext ctx;
  Kernels k;
  CUstream blocking, nonblocking;
  CU_OK(cuStreamCreate(&blocking, 0));
  CU_OK(cuStreamCreate(&nonblocking, CU_STREAM_NON_BLOCKING));
  CUdeviceptr p, q;
  CU_OK(cuMemAlloc(&p, 4));
  CU_OK(cuMemAlloc(&q, 4));
  CU_OK(cuMemsetD32(p, 0, 1));
  CU_OK(cuMemsetD32(q, 0, 1));
  // Blocking stream work, then legacy stream work: the legacy one waits.
  CU_OK(launch_sleep(k, 30000, blocking));
  CU_OK(launch_fill(k, p, 1, 1, blocking));
  CU_OK(launch_fill(k, p, 2, 1, CU_STREAM_LEGACY));
  // Legacy work then blocking stream work: the blocking one waits.
  CU_OK(launch_sleep(k, 30000, nullptr));
  CU_OK(launch_fill(k, q, 3, 1, nullptr));
  CU_OK(launch_fill(k, q, 4, 1, blocking));
  CU_OK(cuStreamSynchronize(blocking));
  uint32_t v;
  CU_OK(cuMemcpyDtoH(&v, p, 4));
  EXPECT_EQ(2u, v);
  CU_OK(cuMemcpyDtoH(&v, q, 4));
  EXPECT_EQ(4u, v);
  // A non-blocking stream does not wait for the legacy stream.
  CU_OK(launch_sleep(k, 100000, nullptr));
  CU_OK(launch_fill(k, q, 5, 1, nonblocking));
  CU_OK(cuStreamSynchronize(nonblocking));
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(nullptr));
  CU_OK(cuCtxSynchronize());
  CU_OK(cuStreamDestroy(blocking));
  CU_OK(cuStreamDestroy(nonblocking));
}

TEST(Streams, PerThreadDefaultStreamIsPerThread) {
  ScopedContext ctx;
  Kernels k;
  // A long job on this thread's per-thread stream does not hold up another thread's.
  CU_OK(launch_sleep(k, 200000, CU_STREAM_PER_THREAD));
  std::atomic<bool> other_done{false};
  CUcontext c = ctx.get();
  std::thread t([&] {
    EXPECT_EQ(CUDA_SUCCESS, cuCtxSetCurrent(c));
    EXPECT_EQ(CUDA_SUCCESS, launch_sleep(k, 1000, CU_STREAM_PER_THREAD));
    EXPECT_EQ(CUDA_SUCCESS, cuStreamSynchronize(CU_STREAM_PER_THREAD));
    other_done = true;
  });
  t.join();
  EXPECT_TRUE(other_done);
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(CU_STREAM_PER_THREAD));
  // The _ptsz entry point maps stream 0 to the per-thread stream.
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery_ptsz(nullptr));
  CU_OK(cuStreamSynchronize(CU_STREAM_PER_THREAD));
}

namespace {
std::atomic<int> g_callbacks{0};
void CUDA_CB on_host(void* p) { static_cast<std::atomic<int>*>(p)->fetch_add(1); }
void CUDA_CB on_callback(CUstream, CUresult status, void*) {
  if (status == CUDA_SUCCESS) g_callbacks.fetch_add(1);
}
}  // namespace

TEST(Streams, HostFunctionsAndCallbacks) {
  ScopedContext ctx;
  CUstream s;
  CU_OK(cuStreamCreate(&s, 0));
  std::atomic<int> hits{0};
  CU_OK(cuLaunchHostFunc(s, on_host, &hits));
  CU_OK(cuLaunchHostFunc(s, on_host, &hits));
  CU_OK(cuStreamAddCallback(s, on_callback, nullptr, 0));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(2, hits.load());
  EXPECT_EQ(1, g_callbacks.load());
  CU_OK(cuStreamDestroy(s));
}
