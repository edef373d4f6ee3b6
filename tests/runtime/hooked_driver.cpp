#include "hooked_driver.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

namespace nz::rt::test {

std::string HookedDriver::start(const std::string& module_path) {
  std::string error;
  if (!gpu::load_driver_api(api_.base, error)) return error;
  lib_ = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib_ == nullptr) return "dlopen libcuda.so.1 failed";
  auto sym = [&](const char* name) { return dlsym(lib_, name); };
  api_.cuFuncGetParamInfo = reinterpret_cast<decltype(api_.cuFuncGetParamInfo)>(sym("cuFuncGetParamInfo"));
  api_.cuKernelGetParamInfo = reinterpret_cast<decltype(api_.cuKernelGetParamInfo)>(sym("cuKernelGetParamInfo"));
  api_.cuKernelGetFunction = reinterpret_cast<decltype(api_.cuKernelGetFunction)>(sym("cuKernelGetFunction"));
  api_.cuStreamIsCapturing = reinterpret_cast<decltype(api_.cuStreamIsCapturing)>(sym("cuStreamIsCapturing"));
  api_.capture_info_v3 =
      reinterpret_cast<decltype(api_.capture_info_v3)>(sym("cuStreamGetCaptureInfo_v3"));
  api_.capture_info_v1 =
      reinterpret_cast<decltype(api_.capture_info_v1)>(sym("cuStreamGetCaptureInfo"));
  api_.cuStreamGetCtx = reinterpret_cast<decltype(api_.cuStreamGetCtx)>(sym("cuStreamGetCtx"));
  api_.cuMemGetAccess = reinterpret_cast<decltype(api_.cuMemGetAccess)>(sym("cuMemGetAccess"));
  api_.cuDeviceGetCount = reinterpret_cast<decltype(api_.cuDeviceGetCount)>(sym("cuDeviceGetCount"));
  api_.cuMemGetAddressRange =
      reinterpret_cast<decltype(api_.cuMemGetAddressRange)>(sym("cuMemGetAddressRange_v2"));
  api_.cuPointerGetAttribute = reinterpret_cast<decltype(api_.cuPointerGetAttribute)>(sym("cuPointerGetAttribute"));
  api_.cuMemAllocAsync = reinterpret_cast<decltype(api_.cuMemAllocAsync)>(sym("cuMemAllocAsync"));
  api_.cuMemFreeAsync = reinterpret_cast<decltype(api_.cuMemFreeAsync)>(sym("cuMemFreeAsync"));
  if (api_.base.cuInit(0) != CUDA_SUCCESS) return "cuInit failed";
  nz::rt::on_driver_initialised(api_);
  CUdevice dev = 0;
  if (api_.base.cuDeviceGet(&dev, 0) != CUDA_SUCCESS) return "cuDeviceGet failed";
  if (api_.base.cuDevicePrimaryCtxRetain(&ctx_, dev) != CUDA_SUCCESS) return "primary context failed";
  if (api_.base.cuCtxSetCurrent(ctx_) != CUDA_SUCCESS) return "cuCtxSetCurrent failed";
  nzsim_module_ref ref{};
  std::memcpy(ref.magic, NZSIM_MODULE_REF_MAGIC, 8);
  std::strncpy(ref.path, module_path.c_str(), sizeof ref.path - 1);
  if (api_.base.cuModuleLoadData(&module_, &ref) != CUDA_SUCCESS) return "loading " + module_path + " failed";
  return {};
}

CUfunction HookedDriver::function(const char* name) {
  CUfunction f = nullptr;
  api_.base.cuModuleGetFunction(&f, module_, name);
  return f;
}

CUdeviceptr HookedDriver::alloc(size_t bytes, bool* served_by_runtime) {
  CUdeviceptr p = 0;
  bool handled = false;
  if (nz::rt::active()) nz::rt::mem_alloc(&p, bytes, &handled);
  if (!handled) {
    // As the shim does (interpose/wrap_alloc.cpp): out of memory, the runtime
    // evicts what it can and the allocation is tried once more.
    CUresult r = api_.base.cuMemAlloc(&p, bytes);
    if (r == CUDA_ERROR_OUT_OF_MEMORY && nz::rt::active() && nz::rt::on_out_of_memory(bytes))
      r = api_.base.cuMemAlloc(&p, bytes);
    if (r != CUDA_SUCCESS) p = 0;
  }
  if (served_by_runtime != nullptr) *served_by_runtime = handled;
  return p;
}

CUresult HookedDriver::free(CUdeviceptr p) {
  bool handled = false;
  if (nz::rt::active()) {
    CUresult r = nz::rt::mem_free(p, &handled);
    if (handled) return r;
    nz::rt::on_foreign_free(p);
  }
  return api_.base.cuMemFree(p);
}

// A copy or memset described to the runtime as the shim describes it, around the real call.
template <typename Call>
CUresult described_transfer(const TransferDesc& d, Call&& call) {
  if (nz::rt::active()) {
    CUresult r = nz::rt::before_transfer(d);
    if (r != CUDA_SUCCESS) return r;
  }
  CUresult r = call();
  if (nz::rt::active()) nz::rt::after_transfer(d, r);
  return r;
}

CUresult HookedDriver::free_async(CUdeviceptr p, CUstream s) {
  bool handled = false;
  if (nz::rt::active()) {
    CUresult r = nz::rt::mem_free_async(p, s, false, &handled);
    if (handled) return r;
    nz::rt::on_foreign_free(p);
  }
  return api_.cuMemFreeAsync != nullptr ? api_.cuMemFreeAsync(p, s) : api_.base.cuMemFree(p);
}

CUresult HookedDriver::htod(CUdeviceptr dst, const void* src, size_t bytes, CUstream s, bool async) {
  Span span{dst, bytes, Access::kWrite};
  // The source bytes too, as the shim passes them (pointer arrays are read from them).
  TransferDesc d{&span, 1, s, false, async, true, async ? "cuMemcpyHtoDAsync" : "cuMemcpyHtoD", src};
  return described_transfer(d, [&] {
    return async ? api_.base.cuMemcpyHtoDAsync(dst, src, bytes, s) : api_.base.cuMemcpyHtoD(dst, src, bytes);
  });
}

CUresult HookedDriver::dtoh(void* dst, CUdeviceptr src, size_t bytes, CUstream s, bool async) {
  Span span{src, bytes, Access::kRead};
  TransferDesc d{&span, 1, s, false, async, false, async ? "cuMemcpyDtoHAsync" : "cuMemcpyDtoH"};
  return described_transfer(d, [&] {
    return async ? api_.base.cuMemcpyDtoHAsync(dst, src, bytes, s) : api_.base.cuMemcpyDtoH(dst, src, bytes);
  });
}

CUresult HookedDriver::dtod(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream s) {
  const Span spans[] = {{dst, bytes, Access::kWrite}, {src, bytes, Access::kRead}};
  TransferDesc d{spans, 2, s, false, true, false, "cuMemcpyDtoDAsync"};
  return described_transfer(d, [&] { return api_.base.cuMemcpyDtoDAsync(dst, src, bytes, s); });
}

CUresult HookedDriver::memset8(CUdeviceptr dst, unsigned char value, size_t bytes, CUstream s) {
  Span span{dst, bytes, Access::kWrite};
  TransferDesc d{&span, 1, s, false, true, false, "cuMemsetD8Async"};
  return described_transfer(d, [&] { return api_.base.cuMemsetD8Async(dst, value, bytes, s); });
}

CUresult HookedDriver::launch(CUfunction f, std::vector<void*> params, CUstream s, const char* api) {
  LaunchDesc d{f, nullptr, params.data(), nullptr, s, false, api};
  if (nz::rt::active()) {
    CUresult r = nz::rt::before_launch(d);
    if (r != CUDA_SUCCESS) return r;
  }
  CUresult r = api_.base.cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s, params.data(), nullptr);
  if (nz::rt::active()) nz::rt::after_launch(d, r);
  return r;
}

CUresult HookedDriver::launch_packed(CUfunction f, const void* buffer, size_t bytes, CUstream s) {
  size_t size = bytes;
  void* extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, const_cast<void*>(buffer), CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
                   CU_LAUNCH_PARAM_END};
  LaunchDesc d{f, nullptr, nullptr, extra, s, false, "cuLaunchKernel"};
  if (nz::rt::active()) {
    CUresult r = nz::rt::before_launch(d);
    if (r != CUDA_SUCCESS) return r;
  }
  CUresult r = api_.base.cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s, nullptr, extra);
  if (nz::rt::active()) nz::rt::after_launch(d, r);
  return r;
}

CUresult HookedDriver::tensor_map_1d(CUtensorMap* map, CUdeviceptr p, size_t elements) {
  using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                              const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                              CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  auto encode = reinterpret_cast<Encode>(symbol("cuTensorMapEncodeTiled"));
  if (encode == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
  const cuuint64_t dims[1] = {elements};
  const cuuint32_t box[1] = {8}, element_strides[1] = {1};  // 16-byte boxes
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 1, reinterpret_cast<void*>(p), dims, nullptr, box,
                            element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                            CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r == CUDA_SUCCESS && nz::rt::active()) nz::rt::on_tensor_map(map, p, elements * 2);
  return r;
}

void* HookedDriver::symbol(const char* name) const { return dlsym(lib_, name); }

bool HookedDriver::sim_stats(nzsim_stats& out) const {
  auto fn = reinterpret_cast<nzsim_get_stats_fn>(dlsym(lib_, "nzsim_get_stats"));
  return fn != nullptr && fn(&out) == 0;
}

HookedDriver* start_shared_driver(const char* who) {
  static HookedDriver driver;
  const std::string error = driver.start(test_module_path());
  if (!error.empty()) {
    std::fprintf(stderr, "%s: %s\n", who, error.c_str());
    return nullptr;
  }
  return &driver;
}

uint64_t host_sum(const uint16_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; ++i) s = s * 1000003u + p[i];
  return s;
}

GraphApi GraphApi::load(const HookedDriver& d) {
  GraphApi g;
  g.begin = reinterpret_cast<decltype(g.begin)>(d.symbol("cuStreamBeginCapture_v2"));
  g.end = reinterpret_cast<decltype(g.end)>(d.symbol("cuStreamEndCapture"));
  g.instantiate = reinterpret_cast<decltype(g.instantiate)>(d.symbol("cuGraphInstantiateWithFlags"));
  g.launch = reinterpret_cast<decltype(g.launch)>(d.symbol("cuGraphLaunch"));
  g.destroy = reinterpret_cast<decltype(g.destroy)>(d.symbol("cuGraphDestroy"));
  g.destroy_exec = reinterpret_cast<decltype(g.destroy_exec)>(d.symbol("cuGraphExecDestroy"));
  return g;
}

std::vector<uint16_t> bf16_weights(size_t count, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<uint16_t> out(count);
  for (auto& w : out) {
    float f = dist(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    bits += 0x7fff + ((bits >> 16) & 1);  // round to nearest even
    w = static_cast<uint16_t>(bits >> 16);
  }
  return out;
}

std::string test_module_path() {
  const char* p = std::getenv("RT_TEST_MODULE");
  return p != nullptr ? p : "";
}

}  // namespace nz::rt::test
