// Modules and libraries (by path, ELF bytes, nzsim_module_ref), param info,
// launches with kernelParams, `extra` buffers, cuLaunchKernelEx.
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "nzsim.h"
#include "sim_test_util.h"

using namespace nzsim_test;

namespace {

void run_vec_add(CUfunction f) {
  const int n = 256;
  std::vector<float> a(n), b(n), c(n);
  for (int i = 0; i < n; ++i) {
    a[i] = static_cast<float>(i);
    b[i] = 2.0f * static_cast<float>(i);
  }
  CUdeviceptr da, db, dc;
  ASSERT_EQ(CUDA_SUCCESS, cuMemAlloc(&da, n * 4));
  ASSERT_EQ(CUDA_SUCCESS, cuMemAlloc(&db, n * 4));
  ASSERT_EQ(CUDA_SUCCESS, cuMemAlloc(&dc, n * 4));
  ASSERT_EQ(CUDA_SUCCESS, cuMemcpyHtoD(da, a.data(), n * 4));
  ASSERT_EQ(CUDA_SUCCESS, cuMemcpyHtoD(db, b.data(), n * 4));
  int count = n;
  void* params[] = {&da, &db, &dc, &count};
  ASSERT_EQ(CUDA_SUCCESS, cuLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, nullptr, params, nullptr));
  ASSERT_EQ(CUDA_SUCCESS, cuMemcpyDtoH(c.data(), dc, n * 4));
  EXPECT_EQ(3.0f * 255, c[255]);
  cuMemFree(da);
  cuMemFree(db);
  cuMemFree(dc);
}

}  // namespace

TEST(Modules, LoadByPathAndLaunch) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction f = get_function(m, "vec_add");
  run_vec_add(f);
  CUfunction missing;
  EXPECT_EQ(CUDA_ERROR_NOT_FOUND, cuModuleGetFunction(&missing, m, "nope"));
  const char* name = nullptr;
  CU_OK(cuFuncGetName(&name, f));
  EXPECT_STREQ("vec_add", name);
  size_t off = 0, size = 0;
  CU_OK(cuFuncGetParamInfo(f, 3, &off, &size));
  EXPECT_EQ(24u, off);
  EXPECT_EQ(4u, size);
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuFuncGetParamInfo(f, 4, &off, &size));
  int threads = 0;
  CU_OK(cuFuncGetAttribute(&threads, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, f));
  EXPECT_EQ(1024, threads);
  CUdeviceptr g;
  size_t gs;
  EXPECT_EQ(CUDA_ERROR_NOT_FOUND, cuModuleGetGlobal(&g, &gs, m, "x"));
  CU_OK(cuModuleUnload(m));
  EXPECT_EQ(CUDA_ERROR_FILE_NOT_FOUND, cuModuleLoad(&m, "/nonexistent/module.so"));
}

// A module's globals: device memory of their own, zeroed, found by name
// through the module and the library forms, read and written by its kernels
// without a parameter, gone with the module.
TEST(Modules, GlobalsAreDeviceMemoryTheKernelsReach) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUdeviceptr g = 0;
  size_t bytes = 0;
  CU_OK(cuModuleGetGlobal(&g, &bytes, m, "counter"));
  EXPECT_EQ(64u, bytes);
  uint32_t v = 7;
  CU_OK(cuMemcpyHtoD(g, &v, sizeof v));
  uint32_t add = 5;
  void* params[] = {&add};
  CU_OK(cuLaunchKernel(get_function(m, "add_to_global"), 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr));
  CU_OK(cuMemcpyDtoH(&v, g, sizeof v));
  EXPECT_EQ(12u, v);
  CUdeviceptr base = 0;
  size_t range = 0;
  CU_OK(cuMemGetAddressRange(&base, &range, g + 8));
  EXPECT_EQ(g, base);
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuModuleGetGlobal(nullptr, nullptr, m, "counter"));
  CU_OK(cuModuleUnload(m));
  EXPECT_NE(CUDA_SUCCESS, cuMemGetAddressRange(&base, &range, g)) << "the global outlived its module";

  CUlibrary lib = nullptr;
  CU_OK(cuLibraryLoadFromFile(&lib, module_path().c_str(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  CU_OK(cuLibraryGetGlobal(&g, &bytes, lib, "counter"));
  CU_OK(cuMemcpyDtoH(&v, g, sizeof v));
  EXPECT_EQ(0u, v) << "a new load's global is not zeroed";
  EXPECT_EQ(CUDA_ERROR_NOT_FOUND, cuLibraryGetGlobal(&g, &bytes, lib, "nope"));
  CU_OK(cuLibraryUnload(lib));
}

TEST(Modules, LoadFromElfBytesAndRef) {
  ScopedContext ctx;
  std::ifstream in(module_path(), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(bytes.empty());
  CUmodule m;
  CU_OK(cuModuleLoadData(&m, bytes.data()));
  run_vec_add(get_function(m, "vec_add"));
  CU_OK(cuModuleUnload(m));

  nzsim_module_ref ref{};
  std::memcpy(ref.magic, NZSIM_MODULE_REF_MAGIC, 8);
  std::strncpy(ref.path, module_path().c_str(), sizeof(ref.path) - 1);
  CU_OK(cuModuleLoadDataEx(&m, &ref, 0, nullptr, nullptr));
  run_vec_add(get_function(m, "vec_add"));
  CU_OK(cuModuleUnload(m));

  const char ptx[] = ".version 8.0\n.target sm_90\n";
  EXPECT_EQ(CUDA_ERROR_NO_BINARY_FOR_GPU, cuModuleLoadData(&m, ptx));
}

TEST(Modules, LibraryAndKernelHandles) {
  ScopedContext ctx;
  nzsim_module_ref ref{};
  std::memcpy(ref.magic, NZSIM_MODULE_REF_MAGIC, 8);
  std::strncpy(ref.path, module_path().c_str(), sizeof(ref.path) - 1);
  CUlibrary lib;
  CU_OK(cuLibraryLoadData(&lib, &ref, nullptr, nullptr, 0, nullptr, nullptr, 0));
  CUkernel kern;
  CU_OK(cuLibraryGetKernel(&kern, lib, "vec_add"));
  size_t off, size;
  CU_OK(cuKernelGetParamInfo(kern, 2, &off, &size));
  EXPECT_EQ(16u, off);
  const char* name;
  CU_OK(cuKernelGetName(&name, kern));
  EXPECT_STREQ("vec_add", name);
  CUfunction f;
  CU_OK(cuKernelGetFunction(&f, kern));
  run_vec_add(f);
  // A CUkernel may be passed to cuLaunchKernel directly.
  run_vec_add(reinterpret_cast<CUfunction>(kern));
  CU_OK(cuLibraryUnload(lib));
  CU_OK(cuLibraryLoadFromFile(&lib, module_path().c_str(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  CU_OK(cuLibraryUnload(lib));
}

TEST(Modules, ExtraBufferAndLaunchEx) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction f = get_function(m, "record_launch");
  CUdeviceptr out;
  CU_OK(cuMemAlloc(&out, 6 * 4));
  // Packed buffer: u64 pointer at 0, u8 at 8, u32 at 12.
  unsigned char buf[16] = {};
  std::memcpy(buf, &out, 8);
  buf[8] = 77;
  uint32_t v = 123456;
  std::memcpy(buf + 12, &v, 4);
  size_t size = sizeof buf;
  void* extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END};
  CU_OK(cuLaunchKernel(f, 3, 2, 1, 64, 1, 1, 128, nullptr, nullptr, extra));
  uint32_t got[6];
  CU_OK(cuMemcpyDtoH(got, out, sizeof got));
  EXPECT_EQ(3u, got[0]);
  EXPECT_EQ(2u, got[1]);
  EXPECT_EQ(64u, got[2]);
  EXPECT_EQ(128u, got[3]);
  EXPECT_EQ(77u, got[4]);
  EXPECT_EQ(123456u, got[5]);

  uint8_t small = 5;
  uint32_t word = 9;
  void* params[] = {&out, &small, &word};
  CUlaunchAttribute attr{};
  attr.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
  attr.value.cooperative = 1;
  CUlaunchConfig cfg{};
  cfg.gridDimX = 7;
  cfg.gridDimY = cfg.gridDimZ = 1;
  cfg.blockDimX = 32;
  cfg.blockDimY = cfg.blockDimZ = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  CU_OK(cuLaunchKernelEx(&cfg, f, params, nullptr));
  CU_OK(cuMemcpyDtoH(got, out, sizeof got));
  EXPECT_EQ(7u, got[0]);
  EXPECT_EQ(5u, got[4]);
  EXPECT_EQ(9u, got[5]);
  CU_OK(cuLaunchCooperativeKernel(f, 4, 1, 1, 1, 1, 1, 0, nullptr, params));
  CU_OK(cuMemcpyDtoH(got, out, sizeof got));
  EXPECT_EQ(4u, got[0]);
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuLaunchKernel(f, 1, 1, 1, 2048, 1, 1, 0, nullptr, params, nullptr));
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr));
  CU_OK(cuMemFree(out));
  CU_OK(cuModuleUnload(m));
}
