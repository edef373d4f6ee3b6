// shim_routes_test.cpp: every route into the driver reaches the shim's wrappers.
// Runs under LD_PRELOAD=<shim test library> with NZ_SHIM_COUNT=1, linked
// directly against a libcuda.so.1 (-lcuda, route a); routes b (dlsym) and c
// (cuGetProcAddress) are exercised explicitly. With NEUZIP=0 the wrappers must
// be entered but the runtime must see nothing.
#include <cuda.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "fake_runtime.h"

namespace {

using CallCountFn = long long (*)(const char*);
using StateFn = FakeRuntimeState* (*)();
using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, CUstream, void**, void**);
using ProcV2Fn = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);

bool runtime_expected_active() {
  const char* v = std::getenv("NEUZIP");
  return !(v && std::strcmp(v, "0") == 0);
}

class ShimRoutes : public ::testing::Test {
 protected:
  void SetUp() override {
    calls_ = reinterpret_cast<CallCountFn>(dlsym(RTLD_DEFAULT, "nz_shim_call_count"));
    auto state_fn = reinterpret_cast<StateFn>(dlsym(RTLD_DEFAULT, "nz_fake_runtime_state"));
    ASSERT_NE(calls_, nullptr) << "the shim is not preloaded (LD_PRELOAD)";
    ASSERT_NE(state_fn, nullptr) << "the preloaded shim is not the fake-runtime test build";
    state_ = state_fn();
    ASSERT_EQ(cuInit(0), CUDA_SUCCESS);
  }
  long long calls(const char* symbol) { return calls_(symbol); }
  void launch_with(LaunchFn fn) {
    ASSERT_NE(fn, nullptr);
    ASSERT_EQ(fn(reinterpret_cast<CUfunction>(0x1234), 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr),
              CUDA_SUCCESS);
  }
  CallCountFn calls_ = nullptr;
  FakeRuntimeState* state_ = nullptr;
};

TEST_F(ShimRoutes, CuInitStartsRuntimeOnceWithRealTable) {
  EXPECT_GE(calls("cuInit"), 1);
  EXPECT_EQ(state_->initialised, 1);
  EXPECT_EQ(state_->real_cuinit_present, 1);
  ASSERT_EQ(cuInit(0), CUDA_SUCCESS);
  EXPECT_EQ(state_->initialised, 1);
}

TEST_F(ShimRoutes, DirectLinkingHitsWrappers) {
  const long long before = calls("cuLaunchKernel");
  const int seen_before = state_->launches;
  launch_with(&cuLaunchKernel);
  EXPECT_EQ(calls("cuLaunchKernel"), before + 1);
  EXPECT_EQ(state_->launches, seen_before + (runtime_expected_active() ? 1 : 0));

  CUdeviceptr p = 0;
  ASSERT_EQ(cuMemAlloc(&p, 64), CUDA_SUCCESS);  // cuda.h: cuMemAlloc_v2
  EXPECT_GE(calls("cuMemAlloc_v2"), 1);
  const char host[8] = "weights";
  ASSERT_EQ(cuMemcpyHtoD(p, host, sizeof host), CUDA_SUCCESS);
  char back[8] = {};
  ASSERT_EQ(cuMemcpyDtoH(back, p, sizeof back), CUDA_SUCCESS);
  EXPECT_STREQ(back, "weights");  // the real driver did the work
  if (runtime_expected_active()) {
    EXPECT_STREQ(state_->last_transfer_api, "cuMemcpyDtoH");
    EXPECT_EQ(state_->last_span_ptr[0], p);
    EXPECT_EQ(state_->last_span_bytes[0], sizeof back);
  }
  ASSERT_EQ(cuMemFree(p), CUDA_SUCCESS);
}

TEST_F(ShimRoutes, HostToDeviceCopyIsDescribed) {
  CUdeviceptr p = 0;
  ASSERT_EQ(cuMemAlloc(&p, 16), CUDA_SUCCESS);
  const int before = state_->transfers;
  const char host[16] = {};
  ASSERT_EQ(cuMemcpyHtoD(p, host, sizeof host), CUDA_SUCCESS);
  if (runtime_expected_active()) {
    EXPECT_EQ(state_->transfers, before + 1);
    EXPECT_TRUE(state_->last_host_to_device);
    EXPECT_FALSE(state_->last_per_thread);
    ASSERT_EQ(state_->last_span_count, 1u);
    EXPECT_EQ(state_->last_span_ptr[0], p);
    EXPECT_EQ(state_->last_span_access[0], 1);  // kWrite
  } else {
    EXPECT_EQ(state_->transfers, before);
  }
  ASSERT_EQ(cuMemFree(p), CUDA_SUCCESS);
}

TEST_F(ShimRoutes, DlsymOnDriverHandleReturnsWrappers) {
  void* driver = dlopen("libcuda.so.1", RTLD_NOW);
  ASSERT_NE(driver, nullptr);
  const long long before = calls("cuLaunchKernel");
  launch_with(reinterpret_cast<LaunchFn>(dlsym(driver, "cuLaunchKernel")));
  EXPECT_EQ(calls("cuLaunchKernel"), before + 1);
  const long long before_pt = calls("cuLaunchKernel_ptsz");
  launch_with(reinterpret_cast<LaunchFn>(dlsym(driver, "cuLaunchKernel_ptsz")));
  EXPECT_EQ(calls("cuLaunchKernel_ptsz"), before_pt + 1);
  // Not hooked: the driver's own function.
  void* sync = dlsym(driver, "cuCtxSynchronize");
  ASSERT_NE(sync, nullptr);
  EXPECT_EQ(reinterpret_cast<CUresult (*)()>(sync)(), CUDA_SUCCESS);
  // Hooked in our table but absent from this driver: absent for the caller too.
  EXPECT_EQ(dlsym(driver, "cuMemcpyBatchAsync_v2"), nullptr);
  // Non-driver names pass through untouched.
  EXPECT_NE(dlsym(RTLD_DEFAULT, "malloc"), nullptr);
  dlclose(driver);
}

TEST_F(ShimRoutes, DlsymRtldDefaultReturnsWrapper) {
  const long long before = calls("cuLaunchKernel");
  launch_with(reinterpret_cast<LaunchFn>(dlsym(RTLD_DEFAULT, "cuLaunchKernel")));
  EXPECT_EQ(calls("cuLaunchKernel"), before + 1);
}

TEST_F(ShimRoutes, GetProcAddressLegacyAndPerThread) {
  void* driver = dlopen("libcuda.so.1", RTLD_NOW);
  auto proc = reinterpret_cast<ProcV2Fn>(dlsym(driver, "cuGetProcAddress_v2"));
  ASSERT_NE(proc, nullptr);
  EXPECT_GE(calls("cuGetProcAddress_v2"), 0);

  void* fn = nullptr;
  CUdriverProcAddressQueryResult status{};
  const long long before = calls("cuLaunchKernel");
  ASSERT_EQ(proc("cuLaunchKernel", &fn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &status), CUDA_SUCCESS);
  EXPECT_EQ(status, CU_GET_PROC_ADDRESS_SUCCESS);
  const int legacy_before = state_->launches;
  launch_with(reinterpret_cast<LaunchFn>(fn));
  EXPECT_EQ(calls("cuLaunchKernel"), before + 1);
  if (runtime_expected_active()) {
    EXPECT_EQ(state_->launches, legacy_before + 1);
    EXPECT_FALSE(state_->last_launch_per_thread);
  }

  const long long before_pt = calls("cuLaunchKernel_ptsz");
  auto* fake_launches = reinterpret_cast<int (*)(int)>(dlsym(driver, "fake_cuda_launches"));
  ASSERT_NE(fake_launches, nullptr);
  const int real_pt_before = fake_launches(1);
  ASSERT_EQ(proc("cuLaunchKernel", &fn, 13000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &status),
            CUDA_SUCCESS);
  launch_with(reinterpret_cast<LaunchFn>(fn));
  EXPECT_EQ(calls("cuLaunchKernel_ptsz"), before_pt + 1);
  EXPECT_EQ(fake_launches(1), real_pt_before + 1);  // forwarded to the per-thread variant
  if (runtime_expected_active()) {
    EXPECT_TRUE(state_->last_launch_per_thread);
  }

  // The version picks the ABI: cuMemAlloc at 12000 is cuMemAlloc_v2.
  ASSERT_EQ(proc("cuMemAlloc", &fn, 12000, 0, &status), CUDA_SUCCESS);
  const long long alloc_before = calls("cuMemAlloc_v2");
  CUdeviceptr p = 0;
  ASSERT_EQ(reinterpret_cast<CUresult (*)(CUdeviceptr*, size_t)>(fn)(&p, 8), CUDA_SUCCESS);
  EXPECT_EQ(calls("cuMemAlloc_v2"), alloc_before + 1);
  ASSERT_EQ(cuMemFree(p), CUDA_SUCCESS);

  // A newer ABI of another signature gets its own wrapper, not the older
  // one's: cuCtxSynchronize at 13000 takes the context to synchronize.
  ASSERT_EQ(proc("cuCtxSynchronize", &fn, 13000, 0, &status), CUDA_SUCCESS);
  const long long sync_before = calls("cuCtxSynchronize_v2");
  auto* synced = reinterpret_cast<CUcontext (*)()>(dlsym(driver, "fake_cuda_synced_context"));
  ASSERT_NE(synced, nullptr);
  const auto named = reinterpret_cast<CUcontext>(uintptr_t{0x5a});
  ASSERT_EQ(reinterpret_cast<CUresult (*)(CUcontext)>(fn)(named), CUDA_SUCCESS);
  EXPECT_EQ(calls("cuCtxSynchronize_v2"), sync_before + 1);
  EXPECT_EQ(synced(), named);

  // Asking for cuGetProcAddress itself yields our wrapper.
  ASSERT_EQ(proc("cuGetProcAddress", &fn, 12000, 0, &status), CUDA_SUCCESS);
  const long long self_before = calls("cuGetProcAddress_v2");
  auto proc2 = reinterpret_cast<ProcV2Fn>(fn);
  ASSERT_EQ(proc2("cuLaunchKernel", &fn, 13000, 0, &status), CUDA_SUCCESS);
  EXPECT_EQ(calls("cuGetProcAddress_v2"), self_before + 1);

  // symbolStatus semantics are the driver's.
  EXPECT_EQ(proc("cuNoSuchCall", &fn, 13000, 0, &status), CUDA_ERROR_NOT_FOUND);
  EXPECT_EQ(status, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  EXPECT_EQ(proc("cuLaunchKernelEx", &fn, 11000, 0, &status), CUDA_ERROR_NOT_FOUND);
  EXPECT_EQ(status, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);

  // cuGetExportTable is handed out untouched and starts nothing.
  const int init_before = state_->initialised;
  ASSERT_EQ(proc("cuGetExportTable", &fn, 13000, 0, &status), CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver, "cuGetExportTable"));
  EXPECT_EQ(state_->initialised, init_before);
  dlclose(driver);
}

TEST_F(ShimRoutes, CuKernelHandlesAreReportedAsKernels) {
  if (!runtime_expected_active()) GTEST_SKIP() << "runtime inactive";
  CUkernel k = nullptr;
  ASSERT_EQ(cuLibraryGetKernel(&k, nullptr, "any"), CUDA_SUCCESS);
  launch_with(&cuLaunchKernel);
  EXPECT_EQ(state_->last_kernel, nullptr);  // 0x1234 is a CUfunction
  ASSERT_EQ(cuLaunchKernel(reinterpret_cast<CUfunction>(k), 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr,
                           nullptr),
            CUDA_SUCCESS);
  EXPECT_EQ(state_->last_kernel, reinterpret_cast<void*>(k));
  EXPECT_EQ(state_->last_func, nullptr);
}

// dlsym(RTLD_NEXT, ...) must still resolve relative to the caller, not to the shim.
TEST_F(ShimRoutes, RtldNextKeepsCallerSemantics) {
  // From the executable, the next "cuCtxSynchronize" is the driver's.
  void* next = dlsym(RTLD_NEXT, "cuCtxSynchronize");
  void* driver = dlopen("libcuda.so.1", RTLD_NOW);
  EXPECT_EQ(next, dlsym(driver, "cuCtxSynchronize"));
  // The preloaded shim comes after the executable: found only if glibc saw the
  // executable (not the shim's dlsym) as the caller.
  EXPECT_NE(dlsym(RTLD_NEXT, "nz_shim_call_count"), nullptr);
  dlclose(driver);
}

}  // namespace
