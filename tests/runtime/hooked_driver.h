// hooked_driver.h: what the shim does, done by hand, so the runtime can be
// tested on the simulator without LD_PRELOAD: real driver entry points from
// libcuda.so.1 (the simulator via LD_LIBRARY_PATH), and every allocation,
// copy and launch described to the runtime through hooks.h.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nzsim.h"
#include "runtime/hooks.h"

namespace nz::rt::test {

class HookedDriver {
 public:
  // Loads the driver, cuInit, makes the primary context current, tells the
  // runtime (on_driver_initialised) and loads `module_path`. Empty error = ok.
  std::string start(const std::string& module_path);
  const RuntimeDriverApi& real() const { return api_; }
  CUcontext context() const { return ctx_; }

  CUfunction function(const char* name);
  CUdeviceptr alloc(size_t bytes, bool* served_by_runtime = nullptr);
  CUresult free(CUdeviceptr p);
  // cuMemFreeAsync: freed once `s`'s queued work is done.
  CUresult free_async(CUdeviceptr p, CUstream s);
  CUresult htod(CUdeviceptr dst, const void* src, size_t bytes, CUstream s = nullptr, bool async = false);
  CUresult dtoh(void* dst, CUdeviceptr src, size_t bytes, CUstream s = nullptr, bool async = false);
  // cuMemcpyDtoDAsync and cuMemsetD8Async, described as the shim does.
  CUresult dtod(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream s);
  CUresult memset8(CUdeviceptr dst, unsigned char value, size_t bytes, CUstream s);
  // kernelParams launch; `use_extra` passes the same values packed in an `extra` buffer.
  CUresult launch(CUfunction f, std::vector<void*> params, CUstream s = nullptr, const char* api = "cuLaunchKernel");
  CUresult launch_packed(CUfunction f, const void* buffer, size_t bytes, CUstream s = nullptr);

  // cuTensorMapEncodeTiled of a 1-D bf16 tensor of `elements` at `p` (16-byte
  // aligned), told to the runtime with its extent as the shim tells it.
  CUresult tensor_map_1d(CUtensorMap* map, CUdeviceptr p, size_t elements);

  // A real entry point by its exported name (for calls the runtime does not hook).
  void* symbol(const char* name) const;

  // nzsim_get_stats from the simulator; false when not running on it.
  bool sim_stats(nzsim_stats& out) const;

 private:
  RuntimeDriverApi api_{};
  CUcontext ctx_ = nullptr;
  CUmodule module_ = nullptr;
  void* lib_ = nullptr;
};

// The driver of a test binary, started once (gtest environments call it from
// SetUp): null, with one line on stderr naming `who`, when the simulated
// driver or the test module is unavailable.
HookedDriver* start_shared_driver(const char* who);

// sum_u16 of rt_test_kernels.cpp, on the host.
uint64_t host_sum(const uint16_t* p, size_t n);

// The graph entry points, from the driver (all null: no graph API).
struct GraphApi {
  CUresult (*begin)(CUstream, CUstreamCaptureMode) = nullptr;
  CUresult (*end)(CUstream, CUgraph*) = nullptr;
  CUresult (*instantiate)(CUgraphExec*, CUgraph, unsigned long long) = nullptr;
  CUresult (*launch)(CUgraphExec, CUstream) = nullptr;
  CUresult (*destroy)(CUgraph) = nullptr;
  CUresult (*destroy_exec)(CUgraphExec) = nullptr;
  bool usable() const { return begin && end && instantiate && launch && destroy && destroy_exec; }
  static GraphApi load(const HookedDriver& d);
};

// bf16 bit patterns of N(0, sigma) values: compressible like real weights.
std::vector<uint16_t> bf16_weights(size_t count, uint32_t seed, float sigma = 0.02f);
std::string test_module_path();  // RT_TEST_MODULE (set by meson)

}  // namespace nz::rt::test
