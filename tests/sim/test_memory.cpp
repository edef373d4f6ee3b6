// cuMemAlloc accounting, OOM, host memory, every copy and memset form.
#include <dlfcn.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "nzsim.h"
#include "sim_test_util.h"

using namespace nzsim_test;

TEST(Memory, AllocAccountingAndOom) {
  ScopedContext ctx;
  size_t free0, total;
  CU_OK(cuMemGetInfo(&free0, &total));
  EXPECT_EQ(1024ull << 20, total);
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 10 << 20));
  size_t free1;
  CU_OK(cuMemGetInfo(&free1, &total));
  EXPECT_EQ(free0 - (10 << 20), free1);
  CUdeviceptr base;
  size_t size;
  CU_OK(cuMemGetAddressRange(&base, &size, p + 100));
  EXPECT_EQ(p, base);
  EXPECT_EQ(10u << 20, size);
  CUdeviceptr huge;
  EXPECT_EQ(CUDA_ERROR_OUT_OF_MEMORY, cuMemAlloc(&huge, 2000ull << 20));
  CU_OK(cuMemFree(p));
  size_t free2;
  CU_OK(cuMemGetInfo(&free2, &total));
  EXPECT_EQ(free0, free2);
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuMemFree(p));  // double free
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuMemAlloc(&p, 0));
}

// As the real stream-ordered pool (release threshold 0): memory freed by
// cuMemFreeAsync stays the pool's, counted as used and not there for
// cuMemAlloc, until a stream, event or context synchronization; only
// cuMemAllocAsync reuses it before that.
TEST(Memory, StreamOrderedFreesComeBackAtASynchronization) {
  ScopedContext ctx;
  size_t free0, total;
  CU_OK(cuMemGetInfo(&free0, &total));
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  const size_t most = free0 - (8 << 20);  // all but 8 MiB
  CUdeviceptr p, q;
  CU_OK(cuMemAllocAsync(&p, most, s));
  CU_OK(cuMemFreeAsync(p, s));
  CU_OK(cuStreamSynchronize(s));  // the free ran: released at this synchronization
  size_t free1;
  CU_OK(cuMemGetInfo(&free1, &total));
  EXPECT_EQ(free0, free1);
  // Freed, run, not synchronized since: the pool still holds it.
  CU_OK(cuMemAllocAsync(&p, most, s));
  CU_OK(cuMemFreeAsync(p, s));
  CUevent e;
  CU_OK(cuEventCreate(&e, CU_EVENT_DEFAULT));
  CU_OK(cuEventRecord(e, s));
  while (cuEventQuery(e) == CUDA_ERROR_NOT_READY) {
  }
  CU_OK(cuMemGetInfo(&free1, &total));
  EXPECT_EQ(free0 - most, free1);
  EXPECT_EQ(CUDA_ERROR_OUT_OF_MEMORY, cuMemAlloc(&q, most));
  CU_OK(cuMemAllocAsync(&q, most, s));  // the pool reuses it
  CU_OK(cuMemFreeAsync(q, s));
  CU_OK(cuEventRecord(e, s));
  CU_OK(cuEventSynchronize(e));  // an event synchronization releases it too
  CU_OK(cuMemAlloc(&q, most));
  CU_OK(cuMemFree(q));
  // And a context synchronization.
  CU_OK(cuMemAllocAsync(&p, most, s));
  CU_OK(cuMemFreeAsync(p, s));
  CU_OK(cuCtxSynchronize());
  CU_OK(cuMemGetInfo(&free1, &total));
  EXPECT_EQ(free0, free1);
  CU_OK(cuEventDestroy(e));
  CU_OK(cuStreamDestroy(s));
}

TEST(Memory, PeakTracking) {
  ScopedContext ctx;
  auto get = reinterpret_cast<nzsim_get_stats_fn>(dlsym(RTLD_DEFAULT, "nzsim_get_stats"));
  auto reset = reinterpret_cast<nzsim_reset_peak_fn>(dlsym(RTLD_DEFAULT, "nzsim_reset_peak"));
  reset();
  nzsim_stats before{}, after{};
  get(&before);
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 64 << 20));
  CU_OK(cuMemFree(p));
  get(&after);
  EXPECT_EQ(before.physical_bytes, after.physical_bytes);
  EXPECT_EQ(before.physical_bytes + (64 << 20), after.peak_physical_bytes);
}

// What a kernel on a GPU reaches (nzsim_device_accessible, which the codec
// module asks before its kernels touch a buffer): device memory and
// page-locked host memory, whole; never pageable host memory.
TEST(Memory, DeviceAccessibleIsDeviceOrPageLockedMemory) {
  ScopedContext ctx;
  auto accessible = reinterpret_cast<nzsim_device_accessible_fn>(dlsym(RTLD_DEFAULT, "nzsim_device_accessible"));
  ASSERT_NE(accessible, nullptr);
  CUdeviceptr d;
  CU_OK(cuMemAlloc(&d, 1 << 20));
  EXPECT_EQ(1, accessible(reinterpret_cast<const void*>(d), 1 << 20));
  void* pinned;
  CU_OK(cuMemAllocHost(&pinned, 4096));
  EXPECT_EQ(1, accessible(pinned, 4096));
  EXPECT_EQ(1, accessible(static_cast<char*>(pinned) + 4000, 96));
  EXPECT_EQ(0, accessible(static_cast<char*>(pinned) + 4000, 97)) << "past the page-locked allocation";
  std::vector<uint8_t> pageable(8192);
  EXPECT_EQ(0, accessible(pageable.data(), 16));
  CU_OK(cuMemHostRegister(pageable.data(), pageable.size(), 0));
  EXPECT_EQ(1, accessible(pageable.data(), pageable.size()));
  CU_OK(cuMemHostUnregister(pageable.data()));
  EXPECT_EQ(0, accessible(pageable.data(), 16));
  CU_OK(cuMemFreeHost(pinned));
  EXPECT_EQ(0, accessible(pinned, 16)) << "freed";
  EXPECT_EQ(1, accessible(nullptr, 0));
  CU_OK(cuMemFree(d));
}

TEST(Memory, CopiesRoundTrip) {
  ScopedContext ctx;
  const size_t n = 1 << 16;
  std::vector<uint8_t> src(n), dst(n);
  std::iota(src.begin(), src.end(), 0);
  CUdeviceptr a, b;
  CU_OK(cuMemAlloc(&a, n));
  CU_OK(cuMemAlloc(&b, n));
  CU_OK(cuMemcpyHtoD(a, src.data(), n));
  CU_OK(cuMemcpyDtoD(b, a, n));
  CU_OK(cuMemcpyDtoH(dst.data(), b, n));
  EXPECT_EQ(src, dst);

  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  void* pinned;
  CU_OK(cuMemAllocHost(&pinned, n));
  CU_OK(cuMemsetD8Async(a, 7, n, s));
  CU_OK(cuMemcpyDtoDAsync(b, a, n, s));
  CU_OK(cuMemcpyDtoHAsync(pinned, b, n, s));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(7, static_cast<uint8_t*>(pinned)[n - 1]);
  // Pageable async HtoD: the source may be reused as soon as the call returns.
  std::vector<uint8_t> pageable(n, 9);
  CU_OK(cuMemcpyHtoDAsync(a, pageable.data(), n, s));
  std::fill(pageable.begin(), pageable.end(), 1);
  CU_OK(cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst.data()), a, n, s));  // unified, pageable dst: completes
  EXPECT_EQ(9, dst[0]);
  CU_OK(cuMemcpyPeer(b, ctx.get(), a, ctx.get(), n));
  CU_OK(cuMemcpy(reinterpret_cast<CUdeviceptr>(dst.data()), b, n));
  EXPECT_EQ(9, dst[n - 1]);
  CUdeviceptr dp;
  CU_OK(cuMemHostGetDevicePointer(&dp, pinned, 0));
  EXPECT_EQ(reinterpret_cast<CUdeviceptr>(pinned), dp);
  unsigned type = 0;
  CU_OK(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, a));
  EXPECT_EQ(CU_MEMORYTYPE_DEVICE, type);
  CU_OK(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, dp));
  EXPECT_EQ(CU_MEMORYTYPE_HOST, type);
  CU_OK(cuMemFreeHost(pinned));
  std::vector<uint8_t> reg(8192);
  CU_OK(cuMemHostRegister(reg.data(), reg.size(), 0));
  EXPECT_EQ(CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, cuMemHostRegister(reg.data(), 16, 0));
  CU_OK(cuMemHostUnregister(reg.data()));
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuMemFree(a));
  CU_OK(cuMemFree(b));
}

TEST(Memory, MemsetForms) {
  ScopedContext ctx;
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 4096));
  std::vector<uint32_t> h(1024);
  CU_OK(cuMemsetD32(p, 0xdeadbeef, 1024));
  CU_OK(cuMemcpyDtoH(h.data(), p, 4096));
  EXPECT_EQ(0xdeadbeefu, h[1023]);
  CU_OK(cuMemsetD16(p, 0x1234, 2048));
  CU_OK(cuMemcpyDtoH(h.data(), p, 4096));
  EXPECT_EQ(0x12341234u, h[5]);
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuMemsetD32(p + 2, 0, 4));  // misaligned
  CU_OK(cuMemsetD8(p, 0, 4096));
  // 2D: 4 rows of 16 bytes at pitch 64.
  CU_OK(cuMemsetD2D8(p, 64, 0xab, 16, 4));
  CU_OK(cuMemsetD2D32Async(p + 32, 64, 0x01020304, 2, 4, nullptr));
  CU_OK(cuMemsetD2D16(p + 48, 64, 0xffff, 1, 4));
  std::vector<uint8_t> b(4096);
  CU_OK(cuMemcpyDtoH(b.data(), p, 4096));
  EXPECT_EQ(0xab, b[64 * 3 + 15]);
  EXPECT_EQ(0, b[64 * 3 + 16]);
  EXPECT_EQ(0x04, b[64 * 2 + 32]);
  EXPECT_EQ(0xff, b[64 + 49]);
  EXPECT_EQ(0, b[64 * 4]);
  CU_OK(cuMemFree(p));
}

TEST(Memory, Copy2DAnd3D) {
  ScopedContext ctx;
  CUdeviceptr d;
  size_t pitch;
  CU_OK(cuMemAllocPitch(&d, &pitch, 100, 8, 4));
  EXPECT_EQ(0u, pitch % 512);
  std::vector<uint8_t> host(100 * 8);
  std::iota(host.begin(), host.end(), 0);
  CUDA_MEMCPY2D c{};
  c.srcMemoryType = CU_MEMORYTYPE_HOST;
  c.srcHost = host.data();
  c.srcPitch = 100;
  c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  c.dstDevice = d;
  c.dstPitch = pitch;
  c.WidthInBytes = 100;
  c.Height = 8;
  CU_OK(cuMemcpy2D(&c));
  std::vector<uint8_t> back(50 * 8);
  CUDA_MEMCPY2D r{};
  r.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  r.srcDevice = d;
  r.srcPitch = pitch;
  r.srcXInBytes = 10;
  r.srcY = 1;
  r.dstMemoryType = CU_MEMORYTYPE_HOST;
  r.dstHost = back.data();
  r.dstPitch = 50;
  r.WidthInBytes = 50;
  r.Height = 7;
  CU_OK(cuMemcpy2DUnaligned(&r));
  EXPECT_EQ(host[100 * 1 + 10], back[0]);
  EXPECT_EQ(host[100 * 7 + 59], back[50 * 6 + 49]);
  CU_OK(cuMemcpy2DAsync(&r, nullptr));
  CU_OK(cuCtxSynchronize());

  std::vector<uint8_t> vol(4 * 4 * 4), out(4 * 4 * 4);
  std::iota(vol.begin(), vol.end(), 0);
  CUDA_MEMCPY3D q{};
  q.srcMemoryType = CU_MEMORYTYPE_HOST;
  q.srcHost = vol.data();
  q.srcPitch = 4;
  q.srcHeight = 4;
  q.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  q.dstDevice = d;
  q.dstPitch = 4;
  q.dstHeight = 4;
  q.WidthInBytes = 4;
  q.Height = 4;
  q.Depth = 4;
  CU_OK(cuMemcpy3D(&q));
  CU_OK(cuMemcpyDtoH(out.data(), d, out.size()));
  EXPECT_EQ(vol, out);
  CU_OK(cuMemFree(d));
}
