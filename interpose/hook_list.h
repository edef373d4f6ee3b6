// hook_list.h: THE table of driver entry points the shim wraps.
//
// Every route into the driver is served from this one list:
//   (a) exports.cpp emits one exported alias per row (LD_PRELOAD interposition),
//   (b) the dlsym override maps an exported name to its wrapper,
//   (c) cuGetProcAddress maps (request name, cudaVersion, flags) to a wrapper.
//
// Columns: X(id, exported symbol, request name, first cudaVersion, stream kind)
//   id          : suffix of the wrapper function nzw_<id> (never a cuda.h macro name)
//   exported    : the symbol libcuda exports for this ABI (what dlsym is asked for)
//   request     : the name cuGetProcAddress is asked for
//   first       : the smallest cudaVersion for which cuGetProcAddress returns this
//                 variant (from cudaTypedefs.h PFN_<name>_v<version>)
//   stream kind : A = no per-thread variant exists; L = legacy-stream variant;
//                 P = the per-thread (_ptsz/_ptds) variant.
// Old ABIs (32-bit CUdeviceptr_v1 of the unsuffixed names) are NOT wrapped: they
// reach the real driver untouched.
#pragma once

#define NZ_HOOK_LIST(X)                                                                          \
  X(Init, "cuInit", "cuInit", 2000, A)                                                           \
  X(GetProcAddress_v1, "cuGetProcAddress", "cuGetProcAddress", 11030, A)                         \
  X(GetProcAddress_v2, "cuGetProcAddress_v2", "cuGetProcAddress", 12000, A)                      \
  /* allocation */                                                                               \
  X(MemAlloc_v2, "cuMemAlloc_v2", "cuMemAlloc", 3020, A)                                         \
  X(MemFree_v2, "cuMemFree_v2", "cuMemFree", 3020, A)                                            \
  X(MemAllocPitch_v2, "cuMemAllocPitch_v2", "cuMemAllocPitch", 3020, A)                          \
  X(MemAllocManaged, "cuMemAllocManaged", "cuMemAllocManaged", 6000, A)                          \
  X(MemCreate, "cuMemCreate", "cuMemCreate", 10020, A)                                           \
  X(MemRelease, "cuMemRelease", "cuMemRelease", 10020, A)                                        \
  X(MemAllocAsync, "cuMemAllocAsync", "cuMemAllocAsync", 11020, L)                               \
  X(MemAllocAsync_ptsz, "cuMemAllocAsync_ptsz", "cuMemAllocAsync", 11020, P)                     \
  X(MemFreeAsync, "cuMemFreeAsync", "cuMemFreeAsync", 11020, L)                                  \
  X(MemFreeAsync_ptsz, "cuMemFreeAsync_ptsz", "cuMemFreeAsync", 11020, P)                        \
  /* pointer queries and memory info */                                                          \
  X(MemGetAddressRange_v2, "cuMemGetAddressRange_v2", "cuMemGetAddressRange", 3020, A)           \
  X(PointerGetAttribute, "cuPointerGetAttribute", "cuPointerGetAttribute", 4000, A)              \
  X(PointerGetAttributes, "cuPointerGetAttributes", "cuPointerGetAttributes", 7000, A)           \
  X(PointerSetAttribute, "cuPointerSetAttribute", "cuPointerSetAttribute", 6000, A)              \
  X(MemRetainAllocationHandle, "cuMemRetainAllocationHandle", "cuMemRetainAllocationHandle",     \
    11000, A)                                                                                    \
  X(MemGetInfo_v2, "cuMemGetInfo_v2", "cuMemGetInfo", 3020, A)                                   \
  X(IpcGetMemHandle, "cuIpcGetMemHandle", "cuIpcGetMemHandle", 4010, A)                          \
  X(IpcOpenMemHandle_v1, "cuIpcOpenMemHandle", "cuIpcOpenMemHandle", 4010, A)                   \
  X(IpcOpenMemHandle_v2, "cuIpcOpenMemHandle_v2", "cuIpcOpenMemHandle", 11000, A)                \
  X(IpcCloseMemHandle, "cuIpcCloseMemHandle", "cuIpcCloseMemHandle", 4010, A)                    \
  X(MemGetHandleForAddressRange, "cuMemGetHandleForAddressRange", "cuMemGetHandleForAddressRange", 11070, A) \
  /* module and context life cycle */                                                            \
  X(ModuleUnload, "cuModuleUnload", "cuModuleUnload", 2000, A)                                   \
  X(LibraryUnload, "cuLibraryUnload", "cuLibraryUnload", 12000, A)                               \
  X(ModuleGetGlobal_v2, "cuModuleGetGlobal_v2", "cuModuleGetGlobal", 3020, A)                     \
  X(LibraryGetGlobal, "cuLibraryGetGlobal", "cuLibraryGetGlobal", 12000, A)                       \
  X(CtxDestroy_v1, "cuCtxDestroy", "cuCtxDestroy", 2000, A)                                      \
  X(CtxDestroy_v2, "cuCtxDestroy_v2", "cuCtxDestroy", 4000, A)                                   \
  X(CtxEnablePeerAccess, "cuCtxEnablePeerAccess", "cuCtxEnablePeerAccess", 4000, A)              \
  X(DevicePrimaryCtxReset_v1, "cuDevicePrimaryCtxReset", "cuDevicePrimaryCtxReset", 7000, A)     \
  X(DevicePrimaryCtxReset_v2, "cuDevicePrimaryCtxReset_v2", "cuDevicePrimaryCtxReset", 11000, A) \
  X(StreamDestroy_v1, "cuStreamDestroy", "cuStreamDestroy", 2000, A)                             \
  X(StreamDestroy_v2, "cuStreamDestroy_v2", "cuStreamDestroy", 4000, A)                          \
  /* synchronisation: where sticky errors surface */                                             \
  X(CtxSynchronize, "cuCtxSynchronize", "cuCtxSynchronize", 2000, A)                             \
  X(CtxSynchronize_v2, "cuCtxSynchronize_v2", "cuCtxSynchronize", 13000, A)                      \
  X(StreamSynchronize, "cuStreamSynchronize", "cuStreamSynchronize", 2000, L)                    \
  X(StreamSynchronize_ptsz, "cuStreamSynchronize_ptsz", "cuStreamSynchronize", 7000, P)          \
  X(EventSynchronize, "cuEventSynchronize", "cuEventSynchronize", 2000, A)                       \
  /* events between streams: waits that chain behind a stream memory wait */                    \
  X(EventRecord, "cuEventRecord", "cuEventRecord", 2000, L)                                      \
  X(EventRecord_ptsz, "cuEventRecord_ptsz", "cuEventRecord", 7000, P)                            \
  X(EventRecordWithFlags, "cuEventRecordWithFlags", "cuEventRecordWithFlags", 11010, L)          \
  X(EventRecordWithFlags_ptsz, "cuEventRecordWithFlags_ptsz", "cuEventRecordWithFlags", 11010, P) \
  X(StreamWaitEvent, "cuStreamWaitEvent", "cuStreamWaitEvent", 3020, L)                          \
  X(StreamWaitEvent_ptsz, "cuStreamWaitEvent_ptsz", "cuStreamWaitEvent", 7000, P)                \
  /* copies */                                                                                   \
  X(MemcpyHtoD_v2, "cuMemcpyHtoD_v2", "cuMemcpyHtoD", 3020, L)                                   \
  X(MemcpyHtoD_v2_ptds, "cuMemcpyHtoD_v2_ptds", "cuMemcpyHtoD", 7000, P)                         \
  X(MemcpyDtoH_v2, "cuMemcpyDtoH_v2", "cuMemcpyDtoH", 3020, L)                                   \
  X(MemcpyDtoH_v2_ptds, "cuMemcpyDtoH_v2_ptds", "cuMemcpyDtoH", 7000, P)                         \
  X(MemcpyDtoD_v2, "cuMemcpyDtoD_v2", "cuMemcpyDtoD", 3020, L)                                   \
  X(MemcpyDtoD_v2_ptds, "cuMemcpyDtoD_v2_ptds", "cuMemcpyDtoD", 7000, P)                         \
  X(MemcpyDtoA_v2, "cuMemcpyDtoA_v2", "cuMemcpyDtoA", 3020, L)                                   \
  X(MemcpyDtoA_v2_ptds, "cuMemcpyDtoA_v2_ptds", "cuMemcpyDtoA", 7000, P)                         \
  X(MemcpyAtoD_v2, "cuMemcpyAtoD_v2", "cuMemcpyAtoD", 3020, L)                                   \
  X(MemcpyAtoD_v2_ptds, "cuMemcpyAtoD_v2_ptds", "cuMemcpyAtoD", 7000, P)                         \
  X(MemcpyHtoDAsync_v2, "cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync", 3020, L)                    \
  X(MemcpyHtoDAsync_v2_ptsz, "cuMemcpyHtoDAsync_v2_ptsz", "cuMemcpyHtoDAsync", 7000, P)          \
  X(MemcpyDtoHAsync_v2, "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync", 3020, L)                    \
  X(MemcpyDtoHAsync_v2_ptsz, "cuMemcpyDtoHAsync_v2_ptsz", "cuMemcpyDtoHAsync", 7000, P)          \
  X(MemcpyDtoDAsync_v2, "cuMemcpyDtoDAsync_v2", "cuMemcpyDtoDAsync", 3020, L)                    \
  X(MemcpyDtoDAsync_v2_ptsz, "cuMemcpyDtoDAsync_v2_ptsz", "cuMemcpyDtoDAsync", 7000, P)          \
  X(Memcpy2D_v2, "cuMemcpy2D_v2", "cuMemcpy2D", 3020, L)                                         \
  X(Memcpy2D_v2_ptds, "cuMemcpy2D_v2_ptds", "cuMemcpy2D", 7000, P)                               \
  X(Memcpy2DUnaligned_v2, "cuMemcpy2DUnaligned_v2", "cuMemcpy2DUnaligned", 3020, L)              \
  X(Memcpy2DUnaligned_v2_ptds, "cuMemcpy2DUnaligned_v2_ptds", "cuMemcpy2DUnaligned", 7000, P)    \
  X(Memcpy2DAsync_v2, "cuMemcpy2DAsync_v2", "cuMemcpy2DAsync", 3020, L)                          \
  X(Memcpy2DAsync_v2_ptsz, "cuMemcpy2DAsync_v2_ptsz", "cuMemcpy2DAsync", 7000, P)                \
  X(Memcpy3D_v2, "cuMemcpy3D_v2", "cuMemcpy3D", 3020, L)                                         \
  X(Memcpy3D_v2_ptds, "cuMemcpy3D_v2_ptds", "cuMemcpy3D", 7000, P)                               \
  X(Memcpy3DAsync_v2, "cuMemcpy3DAsync_v2", "cuMemcpy3DAsync", 3020, L)                          \
  X(Memcpy3DAsync_v2_ptsz, "cuMemcpy3DAsync_v2_ptsz", "cuMemcpy3DAsync", 7000, P)                \
  X(Memcpy, "cuMemcpy", "cuMemcpy", 4000, L)                                                     \
  X(Memcpy_ptds, "cuMemcpy_ptds", "cuMemcpy", 7000, P)                                           \
  X(MemcpyAsync, "cuMemcpyAsync", "cuMemcpyAsync", 4000, L)                                      \
  X(MemcpyAsync_ptsz, "cuMemcpyAsync_ptsz", "cuMemcpyAsync", 7000, P)                            \
  X(MemcpyPeer, "cuMemcpyPeer", "cuMemcpyPeer", 4000, L)                                         \
  X(MemcpyPeer_ptds, "cuMemcpyPeer_ptds", "cuMemcpyPeer", 7000, P)                               \
  X(MemcpyPeerAsync, "cuMemcpyPeerAsync", "cuMemcpyPeerAsync", 4000, L)                          \
  X(MemcpyPeerAsync_ptsz, "cuMemcpyPeerAsync_ptsz", "cuMemcpyPeerAsync", 7000, P)                \
  X(Memcpy3DPeer, "cuMemcpy3DPeer", "cuMemcpy3DPeer", 4000, L)                                   \
  X(Memcpy3DPeer_ptds, "cuMemcpy3DPeer_ptds", "cuMemcpy3DPeer", 7000, P)                         \
  X(Memcpy3DPeerAsync, "cuMemcpy3DPeerAsync", "cuMemcpy3DPeerAsync", 4000, L)                    \
  X(Memcpy3DPeerAsync_ptsz, "cuMemcpy3DPeerAsync_ptsz", "cuMemcpy3DPeerAsync", 7000, P)          \
  X(MemcpyBatchAsync_v1, "cuMemcpyBatchAsync", "cuMemcpyBatchAsync", 12080, L)                   \
  X(MemcpyBatchAsync_v1_ptsz, "cuMemcpyBatchAsync_ptsz", "cuMemcpyBatchAsync", 12080, P)         \
  X(MemcpyBatchAsync_v2, "cuMemcpyBatchAsync_v2", "cuMemcpyBatchAsync", 13000, L)                \
  X(MemcpyBatchAsync_v2_ptsz, "cuMemcpyBatchAsync_v2_ptsz", "cuMemcpyBatchAsync", 13000, P)      \
  X(Memcpy3DBatchAsync_v1, "cuMemcpy3DBatchAsync", "cuMemcpy3DBatchAsync", 12080, L)             \
  X(Memcpy3DBatchAsync_v1_ptsz, "cuMemcpy3DBatchAsync_ptsz", "cuMemcpy3DBatchAsync", 12080, P)   \
  X(Memcpy3DBatchAsync_v2, "cuMemcpy3DBatchAsync_v2", "cuMemcpy3DBatchAsync", 13000, L)          \
  X(Memcpy3DBatchAsync_v2_ptsz, "cuMemcpy3DBatchAsync_v2_ptsz", "cuMemcpy3DBatchAsync", 13000, P) \
  /* stream memory operations: device writes and waits outside kernels */                         \
  X(StreamWriteValue32_v1, "cuStreamWriteValue32", "cuStreamWriteValue32", 8000, L)              \
  X(StreamWriteValue32_v1_ptsz, "cuStreamWriteValue32_ptsz", "cuStreamWriteValue32", 8000, P)    \
  X(StreamWriteValue32_v2, "cuStreamWriteValue32_v2", "cuStreamWriteValue32", 11070, L)          \
  X(StreamWriteValue32_v2_ptsz, "cuStreamWriteValue32_v2_ptsz", "cuStreamWriteValue32", 11070, P) \
  X(StreamWriteValue64_v1, "cuStreamWriteValue64", "cuStreamWriteValue64", 9000, L)              \
  X(StreamWriteValue64_v1_ptsz, "cuStreamWriteValue64_ptsz", "cuStreamWriteValue64", 9000, P)    \
  X(StreamWriteValue64_v2, "cuStreamWriteValue64_v2", "cuStreamWriteValue64", 11070, L)          \
  X(StreamWriteValue64_v2_ptsz, "cuStreamWriteValue64_v2_ptsz", "cuStreamWriteValue64", 11070, P) \
  X(StreamWaitValue32_v1, "cuStreamWaitValue32", "cuStreamWaitValue32", 8000, L)                  \
  X(StreamWaitValue32_v1_ptsz, "cuStreamWaitValue32_ptsz", "cuStreamWaitValue32", 8000, P)        \
  X(StreamWaitValue32_v2, "cuStreamWaitValue32_v2", "cuStreamWaitValue32", 11070, L)              \
  X(StreamWaitValue32_v2_ptsz, "cuStreamWaitValue32_v2_ptsz", "cuStreamWaitValue32", 11070, P)    \
  X(StreamWaitValue64_v1, "cuStreamWaitValue64", "cuStreamWaitValue64", 9000, L)                  \
  X(StreamWaitValue64_v1_ptsz, "cuStreamWaitValue64_ptsz", "cuStreamWaitValue64", 9000, P)        \
  X(StreamWaitValue64_v2, "cuStreamWaitValue64_v2", "cuStreamWaitValue64", 11070, L)              \
  X(StreamWaitValue64_v2_ptsz, "cuStreamWaitValue64_v2_ptsz", "cuStreamWaitValue64", 11070, P)    \
  X(StreamBatchMemOp_v1, "cuStreamBatchMemOp", "cuStreamBatchMemOp", 8000, L)                    \
  X(StreamBatchMemOp_v1_ptsz, "cuStreamBatchMemOp_ptsz", "cuStreamBatchMemOp", 8000, P)          \
  X(StreamBatchMemOp_v2, "cuStreamBatchMemOp_v2", "cuStreamBatchMemOp", 11070, L)                \
  X(StreamBatchMemOp_v2_ptsz, "cuStreamBatchMemOp_v2_ptsz", "cuStreamBatchMemOp", 11070, P)      \
  /* memsets */                                                                                  \
  X(MemsetD8_v2, "cuMemsetD8_v2", "cuMemsetD8", 3020, L)                                         \
  X(MemsetD8_v2_ptds, "cuMemsetD8_v2_ptds", "cuMemsetD8", 7000, P)                               \
  X(MemsetD16_v2, "cuMemsetD16_v2", "cuMemsetD16", 3020, L)                                      \
  X(MemsetD16_v2_ptds, "cuMemsetD16_v2_ptds", "cuMemsetD16", 7000, P)                            \
  X(MemsetD32_v2, "cuMemsetD32_v2", "cuMemsetD32", 3020, L)                                      \
  X(MemsetD32_v2_ptds, "cuMemsetD32_v2_ptds", "cuMemsetD32", 7000, P)                            \
  X(MemsetD2D8_v2, "cuMemsetD2D8_v2", "cuMemsetD2D8", 3020, L)                                   \
  X(MemsetD2D8_v2_ptds, "cuMemsetD2D8_v2_ptds", "cuMemsetD2D8", 7000, P)                         \
  X(MemsetD2D16_v2, "cuMemsetD2D16_v2", "cuMemsetD2D16", 3020, L)                                \
  X(MemsetD2D16_v2_ptds, "cuMemsetD2D16_v2_ptds", "cuMemsetD2D16", 7000, P)                      \
  X(MemsetD2D32_v2, "cuMemsetD2D32_v2", "cuMemsetD2D32", 3020, L)                                \
  X(MemsetD2D32_v2_ptds, "cuMemsetD2D32_v2_ptds", "cuMemsetD2D32", 7000, P)                      \
  X(MemsetD8Async, "cuMemsetD8Async", "cuMemsetD8Async", 3020, L)                                \
  X(MemsetD8Async_ptsz, "cuMemsetD8Async_ptsz", "cuMemsetD8Async", 7000, P)                      \
  X(MemsetD16Async, "cuMemsetD16Async", "cuMemsetD16Async", 3020, L)                             \
  X(MemsetD16Async_ptsz, "cuMemsetD16Async_ptsz", "cuMemsetD16Async", 7000, P)                   \
  X(MemsetD32Async, "cuMemsetD32Async", "cuMemsetD32Async", 3020, L)                             \
  X(MemsetD32Async_ptsz, "cuMemsetD32Async_ptsz", "cuMemsetD32Async", 7000, P)                   \
  X(MemsetD2D8Async, "cuMemsetD2D8Async", "cuMemsetD2D8Async", 3020, L)                          \
  X(MemsetD2D8Async_ptsz, "cuMemsetD2D8Async_ptsz", "cuMemsetD2D8Async", 7000, P)                \
  X(MemsetD2D16Async, "cuMemsetD2D16Async", "cuMemsetD2D16Async", 3020, L)                       \
  X(MemsetD2D16Async_ptsz, "cuMemsetD2D16Async_ptsz", "cuMemsetD2D16Async", 7000, P)             \
  X(MemsetD2D32Async, "cuMemsetD2D32Async", "cuMemsetD2D32Async", 3020, L)                       \
  X(MemsetD2D32Async_ptsz, "cuMemsetD2D32Async_ptsz", "cuMemsetD2D32Async", 7000, P)             \
  /* launches */                                                                                 \
  X(LaunchKernel, "cuLaunchKernel", "cuLaunchKernel", 4000, L)                                   \
  X(LaunchKernel_ptsz, "cuLaunchKernel_ptsz", "cuLaunchKernel", 7000, P)                         \
  X(LaunchKernelEx, "cuLaunchKernelEx", "cuLaunchKernelEx", 11060, L)                            \
  X(LaunchKernelEx_ptsz, "cuLaunchKernelEx_ptsz", "cuLaunchKernelEx", 11060, P)                  \
  X(LaunchCooperativeKernel, "cuLaunchCooperativeKernel", "cuLaunchCooperativeKernel", 9000, L)  \
  X(LaunchCooperativeKernel_ptsz, "cuLaunchCooperativeKernel_ptsz", "cuLaunchCooperativeKernel", \
    9000, P)                                                                                     \
  X(LibraryGetKernel, "cuLibraryGetKernel", "cuLibraryGetKernel", 12000, A)                      \
  X(KernelGetFunction, "cuKernelGetFunction", "cuKernelGetFunction", 12000, A)                   \
  /* capture and graphs */                                                                       \
  X(StreamBeginCapture_v1, "cuStreamBeginCapture", "cuStreamBeginCapture", 10000, L)             \
  X(StreamBeginCapture_v1_ptsz, "cuStreamBeginCapture_ptsz", "cuStreamBeginCapture", 10000, P)   \
  X(StreamBeginCapture_v2, "cuStreamBeginCapture_v2", "cuStreamBeginCapture", 10010, L)          \
  X(StreamBeginCapture_v2_ptsz, "cuStreamBeginCapture_v2_ptsz", "cuStreamBeginCapture", 10010, P) \
  X(StreamBeginCaptureToGraph, "cuStreamBeginCaptureToGraph", "cuStreamBeginCaptureToGraph",     \
    12030, L)                                                                                    \
  X(StreamBeginCaptureToGraph_ptsz, "cuStreamBeginCaptureToGraph_ptsz",                          \
    "cuStreamBeginCaptureToGraph", 12030, P)                                                     \
  X(StreamEndCapture, "cuStreamEndCapture", "cuStreamEndCapture", 10000, L)                      \
  X(StreamEndCapture_ptsz, "cuStreamEndCapture_ptsz", "cuStreamEndCapture", 10000, P)            \
  X(GraphInstantiateWithFlags, "cuGraphInstantiateWithFlags", "cuGraphInstantiateWithFlags",     \
    11040, A)                                                                                    \
  /* the CUDA 10/11 ABI: (exec, graph, error node, log buffer, log size) */                      \
  X(GraphInstantiate_v1, "cuGraphInstantiate", "cuGraphInstantiate", 10000, A)                   \
  X(GraphInstantiate_v2, "cuGraphInstantiate_v2", "cuGraphInstantiate", 11000, A)                \
  X(GraphExecUpdate_v1, "cuGraphExecUpdate", "cuGraphExecUpdate", 10020, A)                      \
  X(GraphExecUpdate_v2, "cuGraphExecUpdate_v2", "cuGraphExecUpdate", 12000, A)                   \
  X(GraphInstantiateWithParams, "cuGraphInstantiateWithParams", "cuGraphInstantiateWithParams",  \
    12000, L)                                                                                    \
  X(GraphInstantiateWithParams_ptsz, "cuGraphInstantiateWithParams_ptsz",                        \
    "cuGraphInstantiateWithParams", 12000, P)                                                    \
  X(GraphExecKernelNodeSetParams_v1, "cuGraphExecKernelNodeSetParams",                          \
    "cuGraphExecKernelNodeSetParams", 10010, A)                                                  \
  X(GraphExecKernelNodeSetParams_v2, "cuGraphExecKernelNodeSetParams_v2",                       \
    "cuGraphExecKernelNodeSetParams", 12000, A)                                                  \
  X(GraphExecMemcpyNodeSetParams, "cuGraphExecMemcpyNodeSetParams",                             \
    "cuGraphExecMemcpyNodeSetParams", 10020, A)                                                  \
  X(GraphExecMemsetNodeSetParams, "cuGraphExecMemsetNodeSetParams",                             \
    "cuGraphExecMemsetNodeSetParams", 10020, A)                                                  \
  X(GraphExecBatchMemOpNodeSetParams, "cuGraphExecBatchMemOpNodeSetParams",                     \
    "cuGraphExecBatchMemOpNodeSetParams", 11070, A)                                              \
  X(GraphExecChildGraphNodeSetParams, "cuGraphExecChildGraphNodeSetParams",                     \
    "cuGraphExecChildGraphNodeSetParams", 11010, A)                                              \
  X(GraphExecNodeSetParams, "cuGraphExecNodeSetParams", "cuGraphExecNodeSetParams", 12020, A)   \
  X(GraphExecDestroy, "cuGraphExecDestroy", "cuGraphExecDestroy", 10000, A)                      \
  X(GraphDestroy, "cuGraphDestroy", "cuGraphDestroy", 10000, A)                                  \
  X(GraphLaunch, "cuGraphLaunch", "cuGraphLaunch", 10000, L)                                     \
  X(GraphLaunch_ptsz, "cuGraphLaunch_ptsz", "cuGraphLaunch", 10000, P)                           \
  /* texture objects */                                                                          \
  X(TexObjectCreate, "cuTexObjectCreate", "cuTexObjectCreate", 5000, A)                         \
  X(TexObjectDestroy, "cuTexObjectDestroy", "cuTexObjectDestroy", 5000, A)                      \
  /* TMA descriptors */                                                                          \
  X(TensorMapEncodeTiled, "cuTensorMapEncodeTiled", "cuTensorMapEncodeTiled", 12000, A)          \
  X(TensorMapEncodeIm2col, "cuTensorMapEncodeIm2col", "cuTensorMapEncodeIm2col", 12000, A)       \
  X(TensorMapEncodeIm2colWide, "cuTensorMapEncodeIm2colWide", "cuTensorMapEncodeIm2colWide",     \
    12080, A)                                                                                    \
  X(TensorMapReplaceAddress, "cuTensorMapReplaceAddress", "cuTensorMapReplaceAddress", 12000, A)

// Extra request names served by an existing wrapper (cuGetProcAddress only):
// Y(request name, first cudaVersion, stream kind, id of the wrapper)
// Since CUDA 12.0 "cuGraphInstantiate" resolves to the 3-argument WithFlags ABI.
#define NZ_PROC_ALIAS_LIST(Y) Y("cuGraphInstantiate", 12000, A, GraphInstantiateWithFlags)
