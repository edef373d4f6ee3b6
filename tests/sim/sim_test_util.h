// Helpers shared by the simulator's tests.
#pragma once

#include <cuda.h>
#include <gtest/gtest.h>

#include <string>

#define CU_OK(expr) ASSERT_EQ(CUDA_SUCCESS, (expr))
#define CU_EXPECT(err, expr) EXPECT_EQ((err), (expr))

namespace nzsim_test {

// cuInit once; returns the device.
CUdevice init_driver();

// A fresh explicit context, current on the calling thread; destroyed at scope end.
class ScopedContext {
 public:
  ScopedContext();
  ~ScopedContext();
  CUcontext get() const { return ctx_; }

 private:
  CUcontext ctx_ = nullptr;
};

// Path of the test kernel module (NZSIM_TEST_MODULE).
std::string module_path();

// The test module, loaded in the current context.
CUmodule load_test_module();

CUfunction get_function(CUmodule m, const char* name);

}  // namespace nzsim_test
