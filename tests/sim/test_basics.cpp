// Initialisation, devices, contexts, error names, cuGetProcAddress.
#include <dlfcn.h>

#include <cstring>
#include <thread>

#include "nzsim.h"
#include "sim_test_util.h"

using namespace nzsim_test;

TEST(Basics, InitDeviceAndName) {
  // Before cuInit only version queries work (gtest runs this test first in this file).
  int version = 0;
  CU_OK(cuDriverGetVersion(&version));
  EXPECT_EQ(13000, version);
  CUdevice dev = init_driver();
  int count = 0;
  CU_OK(cuDeviceGetCount(&count));
  EXPECT_EQ(1, count);
  char name[64];
  CU_OK(cuDeviceGetName(name, sizeof name, dev));
  EXPECT_EQ(0, std::strncmp(name, "nzsim", 5));
  int sms = 0, major = 0, warp = 0;
  CU_OK(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));
  CU_OK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
  CU_OK(cuDeviceGetAttribute(&warp, CU_DEVICE_ATTRIBUTE_WARP_SIZE, dev));
  EXPECT_EQ(132, sms);
  EXPECT_EQ(9, major);
  EXPECT_EQ(32, warp);
  size_t total = 0;
  CU_OK(cuDeviceTotalMem(&total, dev));
  EXPECT_EQ(1024ull << 20, total);  // NZSIM_MEMORY_MB=1024 in the test environment
  CUdevice bad;
  EXPECT_EQ(CUDA_ERROR_INVALID_DEVICE, cuDeviceGet(&bad, 1));
}

TEST(Basics, ErrorNames) {
  const char* s = nullptr;
  CU_OK(cuGetErrorName(CUDA_ERROR_ILLEGAL_ADDRESS, &s));
  EXPECT_STREQ("CUDA_ERROR_ILLEGAL_ADDRESS", s);
  CU_OK(cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s));
  EXPECT_NE(nullptr, std::strstr(s, "memory"));
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuGetErrorName(static_cast<CUresult>(12345), &s));
}

TEST(Basics, ContextStackAndPrimary) {
  CUdevice dev = init_driver();
  CUcontext a, b, cur;
  CU_OK(cuCtxCreate(&a, nullptr, 0, dev));
  CU_OK(cuCtxCreate(&b, nullptr, 0, dev));
  CU_OK(cuCtxGetCurrent(&cur));
  EXPECT_EQ(b, cur);
  CUcontext popped;
  CU_OK(cuCtxPopCurrent(&popped));
  EXPECT_EQ(b, popped);
  CU_OK(cuCtxGetCurrent(&cur));
  EXPECT_EQ(a, cur);
  // Current context is per thread.
  std::thread([&] {
    CUcontext c = reinterpret_cast<CUcontext>(1);
    EXPECT_EQ(CUDA_SUCCESS, cuCtxGetCurrent(&c));
    EXPECT_EQ(nullptr, c);
    CUdeviceptr p;
    EXPECT_EQ(CUDA_ERROR_INVALID_CONTEXT, cuMemAlloc(&p, 16));
  }).join();
  CU_OK(cuCtxDestroy(b));
  CU_OK(cuCtxDestroy(a));
  CU_OK(cuCtxGetCurrent(&cur));
  EXPECT_EQ(nullptr, cur);

  CUcontext p1, p2;
  CU_OK(cuDevicePrimaryCtxRetain(&p1, dev));
  CU_OK(cuDevicePrimaryCtxRetain(&p2, dev));
  EXPECT_EQ(p1, p2);
  unsigned flags;
  int active;
  CU_OK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
  EXPECT_EQ(1, active);
  CU_OK(cuCtxSetCurrent(p1));
  CUdevice d;
  CU_OK(cuCtxGetDevice(&d));
  EXPECT_EQ(dev, d);
  CU_OK(cuCtxSynchronize());
  CU_OK(cuDevicePrimaryCtxRelease(dev));
  CU_OK(cuDevicePrimaryCtxRelease(dev));
  CU_OK(cuCtxSetCurrent(nullptr));
}

TEST(Basics, GetProcAddressHonoursVersionAndFlags) {
  init_driver();
  void* fn = nullptr;
  CUdriverProcAddressQueryResult status;
  CU_OK(cuGetProcAddress("cuMemAlloc", &fn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &status));
  EXPECT_EQ(CU_GET_PROC_ADDRESS_SUCCESS, status);
  EXPECT_EQ(reinterpret_cast<void*>(&cuMemAlloc_v2), fn);
  CU_OK(cuGetProcAddress("cuLaunchKernel", &fn, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &status));
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "cuLaunchKernel_ptsz"), fn);
  CU_OK(cuGetProcAddress("cuLaunchKernel", &fn, 12000, CU_GET_PROC_ADDRESS_LEGACY_STREAM, &status));
  EXPECT_EQ(reinterpret_cast<void*>(&cuLaunchKernel), fn);
  CU_OK(cuGetProcAddress("cuMemcpyHtoD", &fn, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &status));
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "cuMemcpyHtoD_v2_ptds"), fn);
  CU_OK(cuGetProcAddress("cuStreamBeginCapture", &fn, 10000, 0, &status));
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "cuStreamBeginCapture"), fn);
  CU_OK(cuGetProcAddress("cuGetProcAddress", &fn, 12000, 0, &status));
  EXPECT_EQ(reinterpret_cast<void*>(&cuGetProcAddress_v2), fn);
  EXPECT_EQ(CUDA_ERROR_NOT_FOUND, cuGetProcAddress("cuMemAlloc", &fn, 1000, 0, &status));
  EXPECT_EQ(CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT, status);
  EXPECT_EQ(CUDA_ERROR_NOT_FOUND, cuGetProcAddress("cuNoSuchCall", &fn, 13000, 0, &status));
  EXPECT_EQ(CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND, status);
  const void* table = reinterpret_cast<const void*>(1);
  CUuuid id{};
  EXPECT_EQ(CUDA_ERROR_NOT_SUPPORTED, cuGetExportTable(&table, &id));
}

TEST(Basics, UnimplementedCallsAreNotSupported) {
  init_driver();
  CUarray arr;
  CUDA_ARRAY_DESCRIPTOR desc{};
  EXPECT_EQ(CUDA_ERROR_NOT_SUPPORTED, cuArrayCreate(&arr, &desc));
}

TEST(Basics, StatsAreExported) {
  auto get = reinterpret_cast<nzsim_get_stats_fn>(dlsym(RTLD_DEFAULT, "nzsim_get_stats"));
  ASSERT_NE(nullptr, get);
  nzsim_stats s{};
  EXPECT_EQ(0, get(&s));
  EXPECT_EQ(1024ull << 20, s.total_bytes);
  EXPECT_NE(nullptr, dlsym(RTLD_DEFAULT, "nzsim_reset_peak"));
}

TEST(Basics, TensorMapIsOpaqueButDecodable) {
  ScopedContext ctx;
  CUtensorMap map;
  cuuint64_t dims[2] = {64, 64};
  cuuint64_t strides[1] = {128};
  cuuint32_t box[2] = {16, 16}, es[2] = {1, 1};
  void* addr = reinterpret_cast<void*>(0x7000000000ull);
  CU_OK(cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, addr, dims, strides, box, es,
                               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                               CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  // Opaque as on a GPU: the address is in no 8-byte word of the descriptor.
  for (size_t off = 0; off + 8 <= sizeof map; off += 8) {
    uint64_t word;
    std::memcpy(&word, reinterpret_cast<const unsigned char*>(&map) + off, 8);
    EXPECT_NE(0x7000000000ull, word) << "at offset " << off;
  }
  auto decode = reinterpret_cast<nzsim_tensor_map_address_fn>(dlsym(RTLD_DEFAULT, "nzsim_tensor_map_address"));
  ASSERT_NE(nullptr, decode);
  EXPECT_EQ(addr, decode(&map));
  void* moved = reinterpret_cast<void*>(0x7000200000ull);
  CU_OK(cuTensorMapReplaceAddress(&map, moved));
  EXPECT_EQ(moved, decode(&map));
  // The driver's requirements: 16-byte aligned address and strides.
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuTensorMapReplaceAddress(&map, reinterpret_cast<void*>(0x7000200008ull)));
  cuuint64_t odd_strides[1] = {120};
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE,
            cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, addr, dims, odd_strides, box, es,
                                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                   CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE,
            cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, reinterpret_cast<void*>(0x7000000004ull),
                                   dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                   CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
}
