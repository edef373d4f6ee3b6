// fake_libcuda.cpp: a tiny libcuda.so.1 for the shim's routing tests. Memory is
// host memory, launches only count, and cuGetProcAddress implements the
// version/per-thread selection rules of the real driver for the names it has.
#include <cuda.h>
// Define the v1 entry points under their own names.
#undef cuGetProcAddress
#undef cuCtxSynchronize

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace {
std::atomic<int> g_launches{0}, g_launches_ptsz{0}, g_export_table_queries{0};
}

extern "C" {

// Test-only: how often the real (fake) entry points ran.
int fake_cuda_launches(int per_thread) { return per_thread ? g_launches_ptsz.load() : g_launches.load(); }
int fake_cuda_export_table_queries() { return g_export_table_queries.load(); }

CUresult cuInit(unsigned) { return CUDA_SUCCESS; }
CUresult cuDriverGetVersion(int* v) {
  *v = CUDA_VERSION;
  return CUDA_SUCCESS;
}
CUresult cuCtxSynchronize() { return CUDA_SUCCESS; }
// CUDA 13's: the context is named. Test-only: the last one it was given.
static std::atomic<CUcontext> g_synced_context{nullptr};
CUresult cuCtxSynchronize_v2(CUcontext ctx) {
  g_synced_context.store(ctx);
  return CUDA_SUCCESS;
}
CUcontext fake_cuda_synced_context() { return g_synced_context.load(); }
CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
  void* m = std::malloc(n ? n : 1);
  if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
  *p = reinterpret_cast<CUdeviceptr>(m);
  return CUDA_SUCCESS;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
  std::free(reinterpret_cast<void*>(p));
  return CUDA_SUCCESS;
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void* s, size_t n) {
  std::memcpy(reinterpret_cast<void*>(d), s, n);
  return CUDA_SUCCESS;
}
CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr d, const void* s, size_t n) { return cuMemcpyHtoD_v2(d, s, n); }
CUresult cuMemcpyDtoH_v2(void* d, CUdeviceptr s, size_t n) {
  std::memcpy(d, reinterpret_cast<const void*>(s), n);
  return CUDA_SUCCESS;
}
CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) {
  std::memset(reinterpret_cast<void*>(d), v, n);
  return CUDA_SUCCESS;
}
CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D*) { return CUDA_SUCCESS; }
CUresult cuLaunchKernel(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                        CUstream, void**, void**) {
  g_launches.fetch_add(1, std::memory_order_relaxed);
  return CUDA_SUCCESS;
}
CUresult cuLaunchKernel_ptsz(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, CUstream, void**, void**) {
  g_launches_ptsz.fetch_add(1, std::memory_order_relaxed);
  return CUDA_SUCCESS;
}
CUresult cuLaunchKernelEx(const CUlaunchConfig*, CUfunction, void**, void**) {
  g_launches.fetch_add(1, std::memory_order_relaxed);
  return CUDA_SUCCESS;
}
CUresult cuLibraryGetKernel(CUkernel* k, CUlibrary, const char*) {
  static int kernel_object;
  *k = reinterpret_cast<CUkernel>(&kernel_object);
  return CUDA_SUCCESS;
}
CUresult cuGetExportTable(const void** table, const CUuuid*) {
  g_export_table_queries.fetch_add(1);
  *table = nullptr;
  return CUDA_ERROR_NOT_FOUND;
}

CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int version, cuuint64_t flags,
                             CUdriverProcAddressQueryResult* status);
CUresult cuGetProcAddress(const char* symbol, void** pfn, int version, cuuint64_t flags) {
  return cuGetProcAddress_v2(symbol, pfn, version, flags, nullptr);
}

CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int version, cuuint64_t flags,
                             CUdriverProcAddressQueryResult* status) {
  const bool pt = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  struct Row {
    const char* name;
    int first;
    int per_thread;  // -1: any
    void* fn;
  };
  const Row rows[] = {
      {"cuInit", 2000, -1, reinterpret_cast<void*>(&cuInit)},
      {"cuDriverGetVersion", 2020, -1, reinterpret_cast<void*>(&cuDriverGetVersion)},
      {"cuCtxSynchronize", 2000, -1, reinterpret_cast<void*>(&cuCtxSynchronize)},
      {"cuCtxSynchronize", 13000, -1, reinterpret_cast<void*>(&cuCtxSynchronize_v2)},
      {"cuMemAlloc", 3020, -1, reinterpret_cast<void*>(&cuMemAlloc_v2)},
      {"cuMemFree", 3020, -1, reinterpret_cast<void*>(&cuMemFree_v2)},
      {"cuMemcpyHtoD", 3020, 0, reinterpret_cast<void*>(&cuMemcpyHtoD_v2)},
      {"cuMemcpyHtoD", 7000, 1, reinterpret_cast<void*>(&cuMemcpyHtoD_v2_ptds)},
      {"cuMemcpyDtoH", 3020, 0, reinterpret_cast<void*>(&cuMemcpyDtoH_v2)},
      {"cuLaunchKernel", 4000, 0, reinterpret_cast<void*>(&cuLaunchKernel)},
      {"cuLaunchKernel", 7000, 1, reinterpret_cast<void*>(&cuLaunchKernel_ptsz)},
      {"cuLaunchKernelEx", 11060, 0, reinterpret_cast<void*>(&cuLaunchKernelEx)},
      {"cuLibraryGetKernel", 12000, -1, reinterpret_cast<void*>(&cuLibraryGetKernel)},
      {"cuGetExportTable", 3000, -1, reinterpret_cast<void*>(&cuGetExportTable)},
      {"cuGetProcAddress", 11030, -1, reinterpret_cast<void*>(&cuGetProcAddress)},
      {"cuGetProcAddress", 12000, -1, reinterpret_cast<void*>(&cuGetProcAddress_v2)},
  };
  const Row* best = nullptr;
  bool name_seen = false;
  for (int pass = pt ? 1 : 0; pass >= 0 && !best; --pass)
    for (const Row& r : rows) {
      if (std::strcmp(r.name, symbol) != 0) continue;
      name_seen = true;
      if (r.per_thread != -1 && r.per_thread != pass) continue;
      if (r.first > version) continue;
      if (!best || r.first > best->first) best = &r;
    }
  if (!best) {
    *pfn = nullptr;
    if (status)
      *status = name_seen ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                          : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_ERROR_NOT_FOUND;
  }
  *pfn = best->fn;
  if (status) *status = CU_GET_PROC_ADDRESS_SUCCESS;
  return CUDA_SUCCESS;
}

}  // extern "C"
