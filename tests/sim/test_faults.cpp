// Faults become CUDA_ERROR_ILLEGAL_ADDRESS (sticky) instead of crashing; each
// test poisons its own context and destroys it.
#include <dlfcn.h>

#include "nzsim.h"
#include "sim_test_util.h"

using namespace nzsim_test;

namespace {

uint64_t fault_count() {
  auto get = reinterpret_cast<nzsim_get_stats_fn>(dlsym(RTLD_DEFAULT, "nzsim_get_stats"));
  nzsim_stats s{};
  get(&s);
  return s.faults;
}

CUresult launch_sum(CUfunction f, CUdeviceptr p, uint64_t n, CUdeviceptr out, CUstream s) {
  void* params[] = {&p, &n, &out};
  return cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s, params, nullptr);
}

CUmemAccessDesc rw() {
  CUmemAccessDesc d{};
  d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  return d;
}

CUmemAllocationProp device_prop() {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  return prop;
}

}  // namespace

TEST(Faults, KernelReadingUnmappedVa) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction sum = get_function(m, "sum_u32");
  CUdeviceptr va, out;
  CU_OK(cuMemAddressReserve(&va, 2 << 20, 0, 0, 0));
  CU_OK(cuMemAlloc(&out, 8));
  uint64_t before = fault_count();
  CU_OK(launch_sum(sum, va, 16, out, nullptr));
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuCtxSynchronize());
  EXPECT_EQ(before + 1, fault_count());
  // Sticky: later launches and syncs report it too.
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, launch_sum(sum, out, 1, out, nullptr));
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuStreamSynchronize(nullptr));
  cuMemAddressFree(va, 2 << 20);
  cuModuleUnload(m);
}

TEST(Faults, KernelWritingFreedMemory) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction fill = get_function(m, "fill_u32");
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 4096));
  CU_OK(cuMemFree(p));
  CUdeviceptr q;  // the freed address is quarantined, not handed out again
  CU_OK(cuMemAlloc(&q, 4096));
  EXPECT_NE(p, q);
  uint32_t v = 1;
  uint64_t n = 1024;
  void* params[] = {&p, &v, &n};
  CU_OK(cuLaunchKernel(fill, 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr));
  uint32_t word;
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuMemcpyDtoH(&word, q, 4));
  cuModuleUnload(m);
}

TEST(Faults, CopyFromReservedButUnmapped) {
  ScopedContext ctx;
  CUdeviceptr va;
  CU_OK(cuMemAddressReserve(&va, 2 << 20, 0, 0, 0));
  uint32_t word;
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuMemcpyDtoH(&word, va, 4));
  cuMemAddressFree(va, 2 << 20);
}

TEST(Faults, CopyFromInvalidHostPointer) {
  ScopedContext ctx;
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 64));
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuMemcpyDtoH(reinterpret_cast<void*>(8), p, 4));
}

TEST(Faults, UseAfterUnmapAndMappedWithoutAccess) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction sum = get_function(m, "sum_u32");
  CUmemAllocationProp prop = device_prop();
  CUmemGenericAllocationHandle h;
  CU_OK(cuMemCreate(&h, 2 << 20, &prop, 0));
  CUdeviceptr va, out;
  CU_OK(cuMemAddressReserve(&va, 2 << 20, 0, 0, 0));
  CU_OK(cuMemAlloc(&out, 8));
  CU_OK(cuMemMap(va, 2 << 20, 0, h, 0));
  {
    // Mapped but no access yet: faults, in a context of its own.
    ScopedContext inner;
    uint32_t word;
    EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuMemcpyDtoH(&word, va, 4));
  }
  CUmemAccessDesc d = rw();
  CU_OK(cuMemSetAccess(va, 2 << 20, &d, 1));
  CU_OK(launch_sum(sum, va, 1024, out, nullptr));
  CU_OK(cuCtxSynchronize());
  CU_OK(cuMemUnmap(va, 2 << 20));
  CU_OK(launch_sum(sum, va, 1024, out, nullptr));
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuCtxSynchronize());
  cuMemRelease(h);
  cuMemAddressFree(va, 2 << 20);
  cuModuleUnload(m);
}

TEST(Faults, TrapGivesLaunchFailed) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction trap = get_function(m, "trap");
  CU_OK(cuLaunchKernel(trap, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr));
  EXPECT_EQ(CUDA_ERROR_LAUNCH_FAILED, cuCtxSynchronize());
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 4));
  uint32_t w;
  EXPECT_EQ(CUDA_ERROR_LAUNCH_FAILED, cuMemcpyDtoH(&w, p, 4));
  cuModuleUnload(m);
}

TEST(Faults, FreshContextAndPrimaryResetRecover) {
  CUdevice dev = init_driver();
  CUcontext primary;
  CU_OK(cuDevicePrimaryCtxRetain(&primary, dev));
  CU_OK(cuCtxPushCurrent(primary));
  CUdeviceptr va;
  CU_OK(cuMemAddressReserve(&va, 2 << 20, 0, 0, 0));
  uint32_t word;
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuMemcpyDtoH(&word, va, 4));
  EXPECT_EQ(CUDA_ERROR_ILLEGAL_ADDRESS, cuCtxSynchronize());
  CU_OK(cuDevicePrimaryCtxReset(dev));
  CU_OK(cuDevicePrimaryCtxRetain(&primary, dev));
  CU_OK(cuCtxSynchronize());
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 4));
  CU_OK(cuMemcpyDtoH(&word, p, 4));
  CU_OK(cuMemFree(p));
  CU_OK(cuMemAddressFree(va, 2 << 20));
  CUcontext popped;
  CU_OK(cuCtxPopCurrent(&popped));
  CU_OK(cuDevicePrimaryCtxRelease(dev));
  { ScopedContext fresh; CU_OK(cuCtxSynchronize()); }
}
