#include "sim_test_util.h"

#include <cstdlib>

namespace nzsim_test {

CUdevice init_driver() {
  EXPECT_EQ(CUDA_SUCCESS, cuInit(0));
  CUdevice dev = -1;
  EXPECT_EQ(CUDA_SUCCESS, cuDeviceGet(&dev, 0));
  return dev;
}

ScopedContext::ScopedContext() {
  CUdevice dev = init_driver();
  EXPECT_EQ(CUDA_SUCCESS, cuCtxCreate(&ctx_, nullptr, 0, dev));
}

ScopedContext::~ScopedContext() {
  if (ctx_) cuCtxDestroy(ctx_);
}

std::string module_path() {
  const char* p = std::getenv("NZSIM_TEST_MODULE");
  return p ? p : "";
}

CUmodule load_test_module() {
  CUmodule m = nullptr;
  EXPECT_EQ(CUDA_SUCCESS, cuModuleLoad(&m, module_path().c_str()));
  return m;
}

CUfunction get_function(CUmodule m, const char* name) {
  CUfunction f = nullptr;
  EXPECT_EQ(CUDA_SUCCESS, cuModuleGetFunction(&f, m, name));
  return f;
}

}  // namespace nzsim_test
