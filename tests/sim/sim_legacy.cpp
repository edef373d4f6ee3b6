// Legacy (unversioned) entry points whose ABI equals their successor's
// (or converts to it: cuGraphExecUpdate). The
// 32-bit-pointer legacy calls (cuMemAlloc, cuMemcpyHtoD, ...) cannot work on
// 64-bit addresses and stay NOT_SUPPORTED stubs.
#include <cuda.h>

#include <cstdint>

#include "sim_internal.h"

#undef cuCtxCreate
#undef cuCtxDestroy
#undef cuCtxPopCurrent
#undef cuCtxPushCurrent
#undef cuStreamDestroy
#undef cuEventDestroy
#undef cuEventElapsedTime
#undef cuDevicePrimaryCtxRelease
#undef cuDevicePrimaryCtxReset
#undef cuDevicePrimaryCtxSetFlags
#undef cuDeviceGetUuid
#undef cuMemHostRegister
#undef cuGetProcAddress
#undef cuStreamGetCaptureInfo
#undef cuStreamBeginCapture
#undef cuGraphInstantiate
#undef cuGraphExecUpdate
#undef cuMemcpyBatchAsync
#undef cuMemcpy3DBatchAsync
#undef cuIpcOpenMemHandle

extern "C" {

CUresult CUDAAPI cuCtxCreate_v2(CUcontext* pctx, unsigned int flags, CUdevice dev);
CUresult CUDAAPI cuStreamGetCaptureInfo_v3(CUstream, CUstreamCaptureStatus*, cuuint64_t*, CUgraph*, const CUgraphNode**,
                                           const CUgraphEdgeData**, size_t*);
CUresult CUDAAPI cuGraphInstantiate_v2(CUgraphExec*, CUgraph, CUgraphNode*, char*, size_t);
CUresult CUDAAPI cuGraphExecUpdate_v2(CUgraphExec, CUgraph, CUgraphExecUpdateResultInfo*);
CUresult CUDAAPI cuMemcpy3DBatchAsync_v2(size_t, CUDA_MEMCPY3D_BATCH_OP*, unsigned long long, CUstream);
CUresult CUDAAPI cuIpcOpenMemHandle_v2(CUdeviceptr*, CUipcMemHandle, unsigned int);

CUresult CUDAAPI cuIpcOpenMemHandle(CUdeviceptr* pdptr, CUipcMemHandle handle, unsigned int flags) {
  return cuIpcOpenMemHandle_v2(pdptr, handle, flags);
}

CUresult CUDAAPI cuCtxCreate(CUcontext* pctx, unsigned int flags, CUdevice dev) { return cuCtxCreate_v2(pctx, flags, dev); }
CUresult CUDAAPI cuCtxDestroy(CUcontext ctx) { return cuCtxDestroy_v2(ctx); }
CUresult CUDAAPI cuCtxPopCurrent(CUcontext* pctx) { return cuCtxPopCurrent_v2(pctx); }
CUresult CUDAAPI cuCtxPushCurrent(CUcontext ctx) { return cuCtxPushCurrent_v2(ctx); }
CUresult CUDAAPI cuStreamDestroy(CUstream s) { return cuStreamDestroy_v2(s); }
CUresult CUDAAPI cuEventDestroy(CUevent e) { return cuEventDestroy_v2(e); }
CUresult CUDAAPI cuEventElapsedTime(float* ms, CUevent a, CUevent b) { return cuEventElapsedTime_v2(ms, a, b); }
CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice d) { return cuDevicePrimaryCtxRelease_v2(d); }
CUresult CUDAAPI cuDevicePrimaryCtxReset(CUdevice d) { return cuDevicePrimaryCtxReset_v2(d); }
CUresult CUDAAPI cuDevicePrimaryCtxSetFlags(CUdevice d, unsigned int f) { return cuDevicePrimaryCtxSetFlags_v2(d, f); }
CUresult CUDAAPI cuDeviceGetUuid(CUuuid* u, CUdevice d) { return cuDeviceGetUuid_v2(u, d); }
CUresult CUDAAPI cuMemHostRegister(void* p, size_t n, unsigned int f) { return cuMemHostRegister_v2(p, n, f); }
CUresult CUDAAPI cuGetProcAddress(const char* symbol, void** pfn, int version, cuuint64_t flags) {
  return cuGetProcAddress_v2(symbol, pfn, version, flags, nullptr);
}
CUresult CUDAAPI cuStreamGetCaptureInfo(CUstream s, CUstreamCaptureStatus* status, cuuint64_t* id) {
  return cuStreamGetCaptureInfo_v3(s, status, id, nullptr, nullptr, nullptr, nullptr);
}
CUresult CUDAAPI cuStreamBeginCapture(CUstream s) { return cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL); }
CUresult CUDAAPI cuGraphInstantiate(CUgraphExec* e, CUgraph g, CUgraphNode* n, char* log, size_t size) {
  return cuGraphInstantiate_v2(e, g, n, log, size);
}
// The CUDA 10.2-11 ABI: the error node and result as two out-parameters.
CUresult CUDAAPI cuGraphExecUpdate(CUgraphExec e, CUgraph g, CUgraphNode* error_node, CUgraphExecUpdateResult* result) {
  NZ_REQUIRE_INIT();
  if (!error_node || !result) return CUDA_ERROR_INVALID_VALUE;
  CUgraphExecUpdateResultInfo info{};
  const CUresult r = cuGraphExecUpdate_v2(e, g, &info);
  *error_node = info.errorNode;
  *result = info.result;
  return r;
}

// The CUDA 12.8 ABI: failIdx names the copy that failed.
CUresult CUDAAPI cuMemcpyBatchAsync(CUdeviceptr* dsts, CUdeviceptr* srcs, size_t* sizes, size_t count,
                                    CUmemcpyAttributes*, size_t*, size_t, size_t* fail_idx, CUstream h) {
  NZ_REQUIRE_INIT();
  if (count > 0 && (dsts == nullptr || srcs == nullptr || sizes == nullptr)) return CUDA_ERROR_INVALID_VALUE;
  if (fail_idx) *fail_idx = SIZE_MAX;
  for (size_t i = 0; i < count; ++i) {
    if (CUresult r = cuMemcpyAsync(dsts[i], srcs[i], sizes[i], h); r != CUDA_SUCCESS) {
      if (fail_idx) *fail_idx = i;
      return r;
    }
  }
  return CUDA_SUCCESS;
}

// The CUDA 12.8 ABI of cuMemcpy3DBatchAsync: failIdx names the operation
// that failed (SIZE_MAX: none in particular).
CUresult CUDAAPI cuMemcpy3DBatchAsync(size_t count, CUDA_MEMCPY3D_BATCH_OP* ops, size_t* fail_idx,
                                      unsigned long long flags, CUstream h) {
  NZ_REQUIRE_INIT();
  if (fail_idx) *fail_idx = SIZE_MAX;
  if ((count > 0 && ops == nullptr) || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < count; ++i) {
    if (CUresult r = cuMemcpy3DBatchAsync_v2(1, &ops[i], 0, h); r != CUDA_SUCCESS) {
      if (fail_idx) *fail_idx = i;
      return r;
    }
  }
  return CUDA_SUCCESS;
}

// The per-thread forms of the legacy capture calls.
CUresult CUDAAPI cuStreamBeginCapture_v2_ptsz(CUstream, CUstreamCaptureMode);
CUresult CUDAAPI cuStreamBeginCapture_ptsz(CUstream s) { return cuStreamBeginCapture_v2_ptsz(s, CU_STREAM_CAPTURE_MODE_GLOBAL); }

}  // extern "C"
