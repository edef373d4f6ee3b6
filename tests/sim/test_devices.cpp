// Several devices (NZSIM_DEVICES=2): contexts per device, peer access, and
// what a kernel or copy of one device may reach of another's memory.
#include <cstdint>
#include <vector>

#include "sim_test_util.h"

using namespace nzsim_test;

namespace {

CUresult launch_sum(CUfunction f, CUdeviceptr p, uint64_t n, CUdeviceptr out) {
  void* params[] = {&p, &n, &out};
  return cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr);
}

CUmemAccessDesc rw(int device) {
  CUmemAccessDesc d{};
  d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  d.location.id = device;
  d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  return d;
}

// A context on `device`, current while it lives (pushed; popped at the end).
class DeviceContext {
 public:
  explicit DeviceContext(int device) {
    init_driver();
    CUdevice dev;
    EXPECT_EQ(CUDA_SUCCESS, cuDeviceGet(&dev, device));
    EXPECT_EQ(CUDA_SUCCESS, cuCtxCreate(&ctx_, nullptr, 0, dev));
  }
  ~DeviceContext() { cuCtxDestroy(ctx_); }
  CUcontext get() const { return ctx_; }
  void make_current() const { cuCtxSetCurrent(ctx_); }

 private:
  CUcontext ctx_ = nullptr;
};

// 1..n as 32-bit words on the device, and their sum.
CUdeviceptr words(size_t n, uint64_t* sum) {
  std::vector<uint32_t> host(n);
  *sum = 0;
  for (size_t i = 0; i < n; ++i) *sum += host[i] = static_cast<uint32_t>(i + 1);
  CUdeviceptr p = 0;
  if (cuMemAlloc(&p, n * 4) != CUDA_SUCCESS || cuMemcpyHtoD(p, host.data(), n * 4) != CUDA_SUCCESS) return 0;
  return p;
}

uint64_t read_u64(CUdeviceptr p) {
  uint64_t v = 0;
  cuMemcpyDtoH(&v, p, 8);
  return v;
}

}  // namespace

TEST(Devices, EachDeviceHasItsContextsAndPeers) {
  init_driver();
  int count = 0;
  CU_OK(cuDeviceGetCount(&count));
  ASSERT_EQ(2, count);
  CUdevice d1;
  CU_OK(cuDeviceGet(&d1, 1));
  EXPECT_EQ(1, d1);
  CUdevice bad;
  EXPECT_EQ(CUDA_ERROR_INVALID_DEVICE, cuDeviceGet(&bad, 2));
  int can = -1;
  CU_OK(cuDeviceCanAccessPeer(&can, 0, 1));
  EXPECT_EQ(1, can);
  CU_OK(cuDeviceCanAccessPeer(&can, 1, 1));
  EXPECT_EQ(0, can);
  CUcontext p0, p1;
  CU_OK(cuDevicePrimaryCtxRetain(&p0, 0));
  CU_OK(cuDevicePrimaryCtxRetain(&p1, 1));
  EXPECT_NE(p0, p1);
  CU_OK(cuCtxPushCurrent(p1));
  CUdevice current = -1;
  CU_OK(cuCtxGetDevice(&current));
  EXPECT_EQ(1, current);
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 4096));
  int ordinal = -1;
  CU_OK(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p));
  EXPECT_EQ(1, ordinal);
  CU_OK(cuMemFree(p));
  CUcontext popped;
  CU_OK(cuCtxPopCurrent(&popped));
  CU_OK(cuDevicePrimaryCtxRelease(1));
  CU_OK(cuDevicePrimaryCtxRelease(0));
}

TEST(Devices, PeerAccessIsEnabledOnceAndOnlyAcrossDevices) {
  DeviceContext a(0);
  DeviceContext same(0);
  DeviceContext b(1);
  b.make_current();
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuCtxEnablePeerAccess(a.get(), 1));
  CU_OK(cuCtxEnablePeerAccess(a.get(), 0));
  EXPECT_EQ(CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED, cuCtxEnablePeerAccess(a.get(), 0));
  CU_OK(cuCtxDisablePeerAccess(a.get()));
  EXPECT_EQ(CUDA_ERROR_PEER_ACCESS_NOT_ENABLED, cuCtxDisablePeerAccess(a.get()));
  same.make_current();
  EXPECT_EQ(CUDA_ERROR_INVALID_DEVICE, cuCtxEnablePeerAccess(a.get(), 0));
}

TEST(Devices, KernelReachesAnotherDevicesAllocationOnlyWithPeerAccess) {
  DeviceContext a(0);
  uint64_t sum = 0;
  CUdeviceptr data = words(1024, &sum);
  ASSERT_NE(0u, data);
  {
    DeviceContext b(1);
    CUmodule m = load_test_module();
    CUdeviceptr out;
    CU_OK(cuMemAlloc(&out, 8));
    CU_OK(launch_sum(get_function(m, "sum_u32"), data, 1024, out));
    EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuCtxSynchronize());
  }
  {
    DeviceContext b(1);
    CUmodule m = load_test_module();
    CUdeviceptr out;
    CU_OK(cuMemAlloc(&out, 8));
    CU_OK(cuCtxEnablePeerAccess(a.get(), 0));
    CU_OK(launch_sum(get_function(m, "sum_u32"), data, 1024, out));
    CU_OK(cuCtxSynchronize());
    EXPECT_EQ(sum, read_u64(out));
  }
}

TEST(Devices, VirtualMemoryIsReachedByTheDevicesGrantedOnly) {
  DeviceContext a(0);
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  CUmemGenericAllocationHandle h;
  CU_OK(cuMemCreate(&h, 2 << 20, &prop, 0));
  CUdeviceptr va;
  CU_OK(cuMemAddressReserve(&va, 2 << 20, 0, 0, 0));
  CU_OK(cuMemMap(va, 2 << 20, 0, h, 0));
  CUmemAccessDesc d0 = rw(0);
  CU_OK(cuMemSetAccess(va, 2 << 20, &d0, 1));
  uint64_t sum = 0;
  CUdeviceptr src = words(1024, &sum);
  CU_OK(cuMemcpyDtoD(va, src, 4096));
  CUmemLocation loc{CU_MEM_LOCATION_TYPE_DEVICE, 1};
  unsigned long long flags = 99;
  CU_OK(cuMemGetAccess(&flags, &loc, va));
  EXPECT_EQ(CU_MEM_ACCESS_FLAGS_PROT_NONE, flags);
  {
    // Peer access covers cuMemAlloc memory, not virtual memory.
    DeviceContext b(1);
    CU_OK(cuCtxEnablePeerAccess(a.get(), 0));
    CUmodule m = load_test_module();
    CUdeviceptr out;
    CU_OK(cuMemAlloc(&out, 4096));
    // A plain copy run on device 1 is refused; a peer copy names both sides.
    EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuMemcpyDtoD(out, va, 4096));
    CU_OK(cuMemcpyPeer(out, b.get(), va, a.get(), 4096));
    CU_OK(launch_sum(get_function(m, "sum_u32"), out, 1024, out));
    CU_OK(cuCtxSynchronize());
    EXPECT_EQ(sum, read_u64(out));
    CU_OK(launch_sum(get_function(m, "sum_u32"), va, 1024, out));
    EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuCtxSynchronize());
  }
  a.make_current();
  CUmemAccessDesc d1 = rw(1);
  CU_OK(cuMemSetAccess(va, 2 << 20, &d1, 1));
  CU_OK(cuMemGetAccess(&flags, &loc, va));
  EXPECT_EQ(CU_MEM_ACCESS_FLAGS_PROT_READWRITE, flags);
  loc.id = 0;
  CU_OK(cuMemGetAccess(&flags, &loc, va));
  EXPECT_EQ(CU_MEM_ACCESS_FLAGS_PROT_READWRITE, flags) << "a grant to one device keeps the others'";
  {
    DeviceContext b(1);
    CUmodule m = load_test_module();
    CUdeviceptr out;
    CU_OK(cuMemAlloc(&out, 8));
    CU_OK(cuMemcpyDtoD(out, va, 8));
    CU_OK(launch_sum(get_function(m, "sum_u32"), va, 1024, out));
    CU_OK(cuCtxSynchronize());
    EXPECT_EQ(sum, read_u64(out));
  }
  a.make_current();
  CU_OK(cuMemUnmap(va, 2 << 20));
  CU_OK(cuMemRelease(h));
  CU_OK(cuMemAddressFree(va, 2 << 20));
}

TEST(Devices, AModulesFunctionsLaunchOnlyOnItsDevice) {
  DeviceContext a(0);
  CUmodule m = load_test_module();
  CUfunction sum = get_function(m, "sum_u32");
  uint64_t total = 0;
  CUdeviceptr data = words(16, &total);
  CUdeviceptr out;
  CU_OK(cuMemAlloc(&out, 8));
  DeviceContext b(1);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  uint64_t n = 16;
  void* params[] = {&data, &n, &out};
  EXPECT_EQ(CUDA_ERROR_INVALID_HANDLE, cuLaunchKernel(sum, 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  CU_OK(cuStreamDestroy(s));
  a.make_current();
  CU_OK(cuLaunchKernel(sum, 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr));
  CU_OK(cuCtxSynchronize());
  EXPECT_EQ(total, read_u64(out));
}

TEST(Devices, EventsAreRecordedOnlyOnTheirContextsStreams) {
  DeviceContext a(0);
  CUevent e;
  CU_OK(cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
  CU_OK(cuEventRecord(e, nullptr));
  DeviceContext b(1);
  EXPECT_EQ(CUDA_ERROR_INVALID_HANDLE, cuEventRecord(e, nullptr));
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  EXPECT_EQ(CUDA_ERROR_INVALID_HANDLE, cuEventRecord(e, s));
  CU_OK(cuStreamWaitEvent(s, e, 0));  // waits cross contexts and devices
  CU_OK(cuStreamSynchronize(s));
  CU_OK(cuEventQuery(e));
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuEventDestroy(e));
}
