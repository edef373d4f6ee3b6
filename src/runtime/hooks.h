// hooks.h: the boundary between the shim (interpose/) and the runtime (src/runtime/).
//
// The shim owns symbol interposition (dlsym, cuGetProcAddress, exported cu*
// symbols) and forwarding; it holds no policy. For the calls it hooks, it
// describes the call to the runtime with the functions below, which decide
// everything (what to back with VMM, what to stage before the call, what to
// tag after it). All functions are noexcept, thread-safe, and return quickly
// when nothing compressed is involved (the launch path budget is well under
// 1 us: a lock-free range check).
//
// Protocol for a hooked call:
//   1. if (!rt::active()) forward to the real driver and return.
//   2. for alloc/free: ask the runtime; if it says handled, return its result.
//   3. for launches, copies, memsets: r = rt::before_X(desc); if r != CUDA_SUCCESS
//      return r without forwarding; else forward; then rt::after_X(desc, result).
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "gpu/driver_api.h"

namespace nz::rt {

// Extra real entry points the runtime needs beyond gpu::DriverApi.
struct RuntimeDriverApi {
  gpu::DriverApi base;
  CUresult (*cuFuncGetParamInfo)(CUfunction, size_t, size_t*, size_t*);
  CUresult (*cuKernelGetParamInfo)(CUkernel, size_t, size_t*, size_t*);
  CUresult (*cuKernelGetFunction)(CUfunction*, CUkernel);
  CUresult (*cuStreamIsCapturing)(CUstream, CUstreamCaptureStatus*);
  // A stream's capture status and sequence id (optional: null without it):
  // the CUDA 12.3 ABI where the driver has it, else the 10.1 one.
  // (Not named after the calls: cuda.h makes their names macros.)
  CUresult (*capture_info_v3)(CUstream, CUstreamCaptureStatus*, cuuint64_t*, CUgraph*,
                              const CUgraphNode**, const CUgraphEdgeData**, size_t*) = nullptr;
  CUresult (*capture_info_v1)(CUstream, CUstreamCaptureStatus*, cuuint64_t*) = nullptr;
  CUresult (*cuStreamGetCtx)(CUstream, CUcontext*);
  CUresult (*cuMemGetAddressRange)(CUdeviceptr*, size_t*, CUdeviceptr);
  CUresult (*cuPointerGetAttribute)(void*, CUpointer_attribute, CUdeviceptr);
  // How many devices the program sees (NEUZIP_DEVICE / LOCAL_RANK apply below it).
  CUresult (*cuDeviceGetCount)(int*) = nullptr;
  // Whether a page is mapped (and for whom), when granting a peer device.
  CUresult (*cuMemGetAccess)(unsigned long long*, const CUmemLocation*, CUdeviceptr) = nullptr;
  // Stream-ordered allocation (optional: null on drivers without it).
  CUresult (*cuMemAllocAsync)(CUdeviceptr*, size_t, CUstream) = nullptr;
  CUresult (*cuMemFreeAsync)(CUdeviceptr, CUstream) = nullptr;
  // Kernel names for the trace's fault events (optional: CUDA 12.3 and later).
  CUresult (*cuFuncGetName)(const char**, CUfunction) = nullptr;
  CUresult (*cuKernelGetName)(const char**, CUkernel) = nullptr;
  // Sharing served memory between processes (optional: IPC refused without them).
  CUresult (*cuMemExportToShareableHandle)(void*, CUmemGenericAllocationHandle, CUmemAllocationHandleType,
                                           unsigned long long) = nullptr;
  CUresult (*cuMemImportFromShareableHandle)(CUmemGenericAllocationHandle*, void*, CUmemAllocationHandleType) = nullptr;
  // CU_CTX_SYNC_MEMOPS for memory asked to be SYNC_MEMOPS (optional: CUDA 12.1).
  CUresult (*cuCtxGetFlags)(unsigned int*) = nullptr;
  CUresult (*cuCtxSetFlags)(unsigned int) = nullptr;
  // Whether a stream is blocking (ordered with the legacy default stream).
  CUresult (*cuStreamGetFlags)(CUstream, unsigned int*) = nullptr;
  // Whether a stream still has work queued (trailing_uses.cpp).
  CUresult (*cuStreamQuery)(CUstream) = nullptr;
};

// Called by the shim once, after the real cuInit has succeeded, with the real
// entry points. Reads the configuration (NEUZIP, NEUZIP_MODE, ...). Never
// touches CUDA before this. Safe to call more than once (later calls no-op).
void on_driver_initialised(const RuntimeDriverApi& real) noexcept;

// False when NEUZIP=0, before on_driver_initialised, or after the runtime gave
// up (then everything is pass-through). A relaxed atomic load.
bool active() noexcept;

// ---- Allocation -----------------------------------------------------------
// cuMemAlloc(_v2). Sets *handled; when false the shim forwards the call.
CUresult mem_alloc(CUdeviceptr* dptr, size_t bytes, bool* handled) noexcept;
// cuMemFree(_v2). Sets *handled (true only for pointers the runtime served).
CUresult mem_free(CUdeviceptr dptr, bool* handled) noexcept;
// cuMemAllocAsync/FreeAsync, cuMemAllocPitch, cuMemAllocManaged, cuMemCreate,
// cuMemMap (expandable segments) are forwarded untouched; the runtime is told
// about frees of any pointer so it can drop tags on them:
void on_foreign_free(CUdeviceptr dptr) noexcept;
// ... and about the memory the program holds that way and neuzip never
// compresses, so that a run whose weights live there says so once (PyTorch's
// expandable_segments:True, backend:cudaMallocAsync): a successful
// cuMemCreate (key: the handle) or cuMemAllocAsync (key: the pointer), and a
// cuMemRelease of a handle (stream-ordered frees arrive as on_foreign_free).
enum class UnservedKind : uint8_t { kProgramVmm, kStreamOrdered };
void on_unserved_alloc(UnservedKind kind, uint64_t key, size_t bytes) noexcept;
void on_program_handle_release(CUmemGenericAllocationHandle handle) noexcept;
// A successful cuMemRetainAllocationHandle of memory the runtime does not serve.
void on_program_handle_retain(CUmemGenericAllocationHandle handle) noexcept;

// ---- Launches ----------------------------------------------------------------
struct LaunchDesc {
  CUfunction func;      // set for cuLaunchKernel*, or null
  CUkernel kernel;      // set when the handle is a CUkernel (cuLibraryGetKernel), or null
  void** kernel_params; // as passed by the caller (may be null)
  void** extra;         // as passed by the caller (may be null)
  CUstream stream;      // as passed (0, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD, or a stream)
  bool per_thread_stream; // the _ptsz entry point was used (stream 0 means per-thread)
  const char* api;      // "cuLaunchKernel", "cuLaunchKernelEx", ... for logs and trace
};
CUresult before_launch(const LaunchDesc& d) noexcept;
void after_launch(const LaunchDesc& d, CUresult launch_result) noexcept;

// ---- Copies and memsets -------------------------------------------------------
enum class Access : uint8_t { kRead, kWrite };
// One device byte range a call touches. Host pointers are not reported.
struct Span {
  CUdeviceptr ptr;
  size_t bytes;
  Access access;
};
struct TransferDesc {
  const Span* spans;    // 1 or 2 ranges (for 2D/3D copies: the bounding byte range)
  size_t span_count;
  CUstream stream;      // as passed; synchronous calls pass 0
  bool per_thread_stream;
  bool is_async;
  bool host_to_device;  // the data comes from the host: a candidate for tagging weights
  const char* api;
  const void* host_src = nullptr;  // host-to-device: the source bytes (pointer arrays are read from it)
  // A stream memory wait (cuStreamWaitValue, a batch's wait operations): the
  // stream may wait for work the program launches later (patient_wait.cpp).
  bool waits = false;
};
CUresult before_transfer(const TransferDesc& d) noexcept;
void after_transfer(const TransferDesc& d, CUresult result) noexcept;

// ---- Events between streams -------------------------------------------------------
// After a successful cuEventRecord(WithFlags) / cuStreamWaitEvent: a stream made
// to wait for an event recorded behind a stream memory wait may itself wait
// for later work (patient_wait.cpp). One relaxed load while no stream does.
void after_event_record(CUevent event, CUstream stream, bool per_thread_stream) noexcept;
void after_stream_wait_event(CUstream stream, bool per_thread_stream, CUevent event) noexcept;

// ---- Communication libraries (NCCL) ------------------------------------------------
// NCCL's kernels find their buffers through work descriptors the launch scan
// never sees, so the shim describes each collective or send/receive as the
// byte ranges it reads and writes (TransferDesc, exactly count x type size).
// Protocol: if (!external_hooks_enabled()) forward; r = before_external(d);
// if r != CUDA_SUCCESS fail the call without forwarding; forward; then
// after_external(d, outcome). Between on_group_start/on_group_end of this
// thread (ncclGroupStart/End, nested) nothing is enqueued until the outermost
// end: the ranges stay held (never evicted) until then, and their uses are
// recorded on each stream after it.
enum class ExternalOutcome : uint8_t {
  kEnqueued,  // the call succeeded (in a group: will be enqueued at the group's end)
  kFailed,    // nothing was enqueued
  kPending,   // nonblocking communicator (ncclInProgress): enqueued later, we cannot tell when
};
// False when the runtime is inactive or NEUZIP_NCCL=0.
bool external_hooks_enabled() noexcept;
CUresult before_external(const TransferDesc& d) noexcept;
void after_external(const TransferDesc& d, ExternalOutcome outcome) noexcept;
// After a successful ncclGroupStart / after ncclGroupEnd returned.
void on_group_start() noexcept;
void on_group_end(ExternalOutcome outcome) noexcept;
// After a library call that makes `stream` wait for other ranks (ncclWaitSignal):
// the stream may wait for work launched later, as after a stream memory wait.
void after_external_wait(CUstream stream) noexcept;
// A range the library keeps using outside any call we see (ncclCommRegister,
// ncclMemAlloc): staged now and pinned (never compressed, never unmapped)
// until unpin_external(owner). `owner` names the registration (the handle
// NCCL returned, or the pointer of ncclMemAlloc); `kind` keeps the two apart.
// A texture object over linear memory (cuTexObjectCreate) reads through a
// 64-bit handle, never the address: pinned while the object lives
// (kTextureObject, not switched off with NEUZIP_NCCL=0); its unpin first
// waits for the context's queued work, which may still sample it.
enum class PinOwner : uint8_t { kRegistration, kLibraryAllocation, kTextureObject, kModuleGlobal };
void pin_external(PinOwner kind, uintptr_t owner, CUdeviceptr ptr, size_t bytes, const char* api) noexcept;
void unpin_external(PinOwner kind, uintptr_t owner) noexcept;

// ---- Graphs and capture -----------------------------------------------------------
void on_capture_begin(CUstream stream) noexcept;
void on_capture_end(CUstream stream, CUgraph graph) noexcept;
void on_graph_instantiate(CUgraphExec exec, CUgraph graph) noexcept;
void on_graph_exec_destroy(CUgraphExec exec) noexcept;
// cuGraphDestroy, before the real call (the handle may be reused after it).
// Ranges a captured graph uses stay pinned while the graph or any executable
// graph instantiated from it exists; without this call (a shim that does not
// hook cuGraphDestroy) a captured graph's pins last until process exit.
void on_graph_destroy(CUgraph graph) noexcept;
CUresult before_graph_launch(CUgraphExec exec, CUstream stream) noexcept;
// After a cuGraphLaunch that succeeded: the replay's uses of the exec's ranges
// (an eviction after the exec died waits for them).
void after_graph_launch(CUgraphExec exec, CUstream stream, bool per_thread_stream) noexcept;

// ---- Graphs built node by node ---------------------------------------------------
// A graph built node by node (cuGraphCreate + cuGraphAdd*Node, a clone, a
// child graph, nodes added to a captured graph) runs kernels that never pass
// through a launch hook. Before any graph is instantiated (or an exec is
// updated to it) the shim lists its nodes, child graphs flattened, and the
// runtime stages and pins what they touch for as long as the graph and its
// execs live.
struct GraphContents {
  std::vector<LaunchDesc> launches;  // kernel nodes (parameters valid while the graph is unchanged)
  std::vector<Span> spans;           // memcpy and memset nodes' device ranges
  // false: a node could not be read and no capture we saw made it (it may touch anything).
  bool complete = true;
};
// Stages and pins what `c` touches for `graph` (nothing when nothing is
// tracked); an error (no memory to stage) fails the call that asked.
CUresult on_graph_contents(CUgraph graph, const GraphContents& c) noexcept;
// An exec node setter (cuGraphExec*NodeSetParams): the new parameters'
// ranges, pinned for `node` of `exec` in place of what its last setter call pinned.
CUresult on_exec_node_params(CUgraphExec exec, CUgraphNode node, const GraphContents& c) noexcept;
// Where `graph`'s nodes (or, with `exec` set, an exec setter's new node)
// read and write, before they are staged: memory tagged there later is
// pinned for the graph and its execs (or the exec) as it is tagged (a static
// input buffer first filled from the host after the capture). An incomplete
// listing reads everything.
void note_graph_reads(CUgraph graph, CUgraphExec exec, const GraphContents& c) noexcept;

// ---- TMA descriptors --------------------------------------------------------------
// cuTensorMapEncode*: remember which device range a descriptor points at, so a
// launch that passes the 128-byte descriptor by value is seen to touch it.
// `bytes`: how far from the address it can reach (0: unknown).
void on_tensor_map(const CUtensorMap* map, CUdeviceptr global_address, size_t bytes) noexcept;
// cuTensorMapReplaceAddress: `before` is the descriptor's 128 bytes before the
// call (its extent carries over to the new address).
void on_tensor_map_replaced(const void* before, const CUtensorMap* map, CUdeviceptr global_address) noexcept;

// ---- Pointer queries (memory the runtime serves answers as cuMemAlloc memory) -------
// cuMemGetAddressRange: the program's allocation (base, requested size), even
// over compressed pages. False: not managed, forward the call.
bool address_range(CUdeviceptr p, CUdeviceptr* base, size_t* size) noexcept;
// cuPointerGetAttribute for a managed pointer: true when answered (*result
// set), false to forward the call.
bool pointer_attribute(void* data, CUpointer_attribute attribute, CUdeviceptr p, CUresult* result) noexcept;
// cuPointerSetAttribute of a managed pointer: true when answered (*result
// set), false to forward the call. CU_POINTER_ATTRIBUTE_SYNC_MEMOPS (set by
// MPI, UCX, libfabric on buffers a NIC reads) succeeds as on cuMemAlloc
// memory: the driver refuses it for virtual memory, so the context gets
// CU_CTX_SYNC_MEMOPS instead, the way the driver offers for such memory.
bool set_pointer_attribute(const void* value, CUpointer_attribute attribute, CUdeviceptr p, CUresult* result) noexcept;
// The pointer lies in memory the runtime serves (cuMemRetainAllocationHandle
// must fail on it, as on cuMemAlloc memory).
bool is_managed(CUdeviceptr p) noexcept;
// cuMemFreeAsync: frees managed memory once the stream's queued work is done.
CUresult mem_free_async(CUdeviceptr dptr, CUstream stream, bool per_thread, bool* handled) noexcept;

// ---- Sharing memory between processes (legacy CUDA IPC) -------------------------------
// cuIpcGetMemHandle of memory the runtime serves (virtual memory, which the
// driver's legacy IPC cannot export): the allocation is made resident and
// backed by one exportable handle for good, never compressed again, and
// `handle` names it for ipc_open in another process. True when handled
// (*result set); false: not served, forward the call.
bool ipc_export(CUipcMemHandle* handle, CUdeviceptr p, CUresult* result) noexcept;
// cuIpcOpenMemHandle(_v2) of a handle ipc_export made (in another process):
// the memory is fetched from the exporter and mapped here. True when the
// handle is one of ours (*result set); false: forward the call. Works with
// the runtime off (NEUZIP=0) as long as the driver was initialised.
bool ipc_open(CUdeviceptr* out, const CUipcMemHandle& handle, unsigned flags, CUresult* result) noexcept;
// cuIpcCloseMemHandle of a pointer ipc_open returned: true when handled.
bool ipc_close(CUdeviceptr p, CUresult* result) noexcept;
// cuMemGetHandleForAddressRange (a dma-buf for a NIC or storage driver) of
// memory the runtime serves: the allocation is made resident where it is and
// never compressed again, so that the pages the dma-buf holds stay the
// program's. True when served (*result set: forward the call if it is
// CUDA_SUCCESS); false: not served, forward the call.
bool before_dmabuf_export(CUdeviceptr p, size_t bytes, CUresult* result) noexcept;
// Called once the real cuInit succeeded (by on_driver_initialised).
void remember_driver_process() noexcept;

// ---- Module, context and error life cycle ---------------------------------------------
// cuModuleUnload/cuLibraryUnload, after the real call succeeded: handles may
// be reused, and the module's globals are gone (`module` is the handle).
void on_module_unload(const void* module) noexcept;
// cuModuleGetGlobal / cuLibraryGetGlobal answered: [begin, begin + bytes) is
// a global of `module` (its kernels read it without a parameter).
void on_module_global(const void* module, CUdeviceptr begin, size_t bytes) noexcept;
// cuCtxDestroy (ctx) / cuDevicePrimaryCtxReset (ctx null, device set), before
// the real call: everything the runtime holds in that context is released.
void on_context_destroy(CUcontext ctx, CUdevice device, bool primary_reset) noexcept;
// cuCtxEnablePeerAccess(peer, 0) succeeded: the current context's device may
// now reach `peer`'s memory, so the memory neuzip serves in `peer` is granted
// to it (peer access alone does not cover virtual memory).
void on_peer_access_enabled(CUcontext peer) noexcept;
// A device-to-device copy (cuMemcpy, cuMemcpyDtoD and their async forms) made
// in a context of another device, between memory neuzip serves and device
// memory: the driver refuses plain copies of virtual memory made from another
// device (as it does for stream-ordered memory: cuMemcpyPeer is the way), and
// served memory is virtual memory where the program expects cuMemAlloc
// memory. True: forward it as a peer copy between *dctx and *sctx.
bool peer_copy_contexts(CUdeviceptr dst, CUdeviceptr src, CUcontext* dctx, CUcontext* sctx) noexcept;
// A copy with a host side of memory neuzip serves (`a` or `b`), made in
// another device's context: true when it must run in the served context (the
// driver wants the device holding virtual memory current for host copies).
// The caller's `stream` (its context, for the special handles) is drained
// and the served context made current; the shim then copies on the served
// context's default stream (per-thread for the _ptds/_ptsz forms) and calls
// leave_served_context, which waits for the copy there (`drain`: the caller's
// next work knows nothing of that stream, and even a synchronous copy from
// pageable memory may return before its transfer) and makes *restore current
// again. Not on a capturing stream (the copy stays the program's).
bool enter_served_context(CUdeviceptr a, CUdeviceptr b, CUstream stream, CUcontext* restore) noexcept;
void leave_served_context(CUcontext restore, bool drain, bool per_thread) noexcept;
// cuStreamDestroy (any stream, the runtime's own included): see Unit::add_use.
void note_stream_destroyed() noexcept;
// cuGraphExecUpdate succeeded: the exec now replays `graph`.
void on_graph_exec_update(CUgraphExec exec, CUgraph graph) noexcept;
// Any hooked call that returned a sticky error (700-720): the runtime names a
// decode checksum failure it caused, or says what it may have missed.
void on_sticky_error(CUresult result, const char* api) noexcept;
inline bool is_sticky_error(CUresult r) noexcept { return r >= 700 && r <= 720; }

// ---- Memory info -----------------------------------------------------------------
// Called after a real cuMemAlloc* failed with CUDA_ERROR_OUT_OF_MEMORY: the
// runtime evicts staging memory and returns true when the shim should retry.
bool on_out_of_memory(size_t bytes_wanted) noexcept;
// cuMemGetInfo: the free memory reported leaves out what staging compressed
// weights for a launch needs (a program that sizes a cache from free memory
// must leave that room).
void adjust_free_memory(size_t* free, size_t total) noexcept;

}  // namespace nz::rt
