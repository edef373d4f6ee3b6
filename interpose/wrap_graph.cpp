// wrap_graph.cpp: stream capture, graph instantiation/launch, TMA descriptors.
#include <cstring>

#include "graph_contents.h"
#include "shim_log.h"
#include "transfer_spans.h"
#include "wrap_common.h"

namespace nz::shim {
namespace {

template <Hook H, bool PT>
CUresult begin_capture(CUstream st, CUstreamCaptureMode mode) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUstream, CUstreamCaptureMode)>(H);
  if (!real) return missing_entry(H);
  CUresult r = real(st, mode);
  if (r == CUDA_SUCCESS && rt::active()) rt::on_capture_begin(st);
  return r;
}

// The CUDA 10.0 ABI: no mode (global).
template <Hook H, bool PT>
CUresult begin_capture_v1(CUstream st) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUstream)>(H);
  if (!real) return missing_entry(H);
  CUresult r = real(st);
  if (r == CUDA_SUCCESS && rt::active()) rt::on_capture_begin(st);
  return r;
}

template <Hook H, bool PT>
CUresult begin_capture_to_graph(CUstream st, CUgraph g, const CUgraphNode* deps,
                                const CUgraphEdgeData* data, size_t n,
                                CUstreamCaptureMode mode) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUstream, CUgraph, const CUgraphNode*, const CUgraphEdgeData*,
                                   size_t, CUstreamCaptureMode)>(H);
  if (!real) return missing_entry(H);
  if (rt::active()) note_capture_into(st, g);
  CUresult r = real(st, g, deps, data, n, mode);
  if (!rt::active()) return r;
  if (r == CUDA_SUCCESS) rt::on_capture_begin(st);
  else note_capture_end(st, nullptr);  // no capture: drop the snapshot
  return r;
}

template <Hook H, bool PT>
CUresult end_capture(CUstream st, CUgraph* graph) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUstream, CUgraph*)>(H);
  if (!real) return missing_entry(H);
  CUresult r = real(st, graph);
  // Also on failure (graph null): the capture is over either way.
  if (rt::active()) {
    const CUgraph made = r == CUDA_SUCCESS && graph ? *graph : nullptr;
    note_capture_end(st, made);
    rt::on_capture_end(st, made);
  }
  return r;
}

template <Hook H, bool PT>
CUresult instantiate_with_params(CUgraphExec* exec, CUgraph g,
                                 CUDA_GRAPH_INSTANTIATE_PARAMS* params) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUgraphExec*, CUgraph, CUDA_GRAPH_INSTANTIATE_PARAMS*)>(H);
  if (!real) return missing_entry(H);
  rt::GraphContents contents;
  if (rt::active()) {
    if (CUresult r = before_instantiate(g, "cuGraphInstantiateWithParams", contents); r != CUDA_SUCCESS) return r;
  }
  CUresult r = real(exec, g, params);
  if (r == CUDA_SUCCESS && exec && rt::active()) after_instantiate(*exec, g, false);
  return r;
}

template <Hook H, bool PT>
CUresult graph_launch(CUgraphExec exec, CUstream st) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUgraphExec, CUstream)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(exec, st);
  CUresult r = rt::before_graph_launch(exec, st);
  if (r != CUDA_SUCCESS) return r;
  r = real(exec, st);
  if (r == CUDA_SUCCESS) rt::after_graph_launch(exec, st, PT);
  return r;
}

// `bounded`: the extent is certain (tiled, not interleaved); else 0, unknown.
void report_tensor_map(CUresult r, const CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank,
                       void* global, const cuuint64_t* dims, const cuuint64_t* strides, bool bounded) noexcept {
  if (r != CUDA_SUCCESS || !map || !rt::active()) return;
  rt::on_tensor_map(map, reinterpret_cast<CUdeviceptr>(global),
                    bounded ? tensor_map_extent(type, rank, dims, strides) : 0);
}

}  // namespace
}  // namespace nz::shim

using nz::shim::Hook;
using nz::shim::real_of;

NZ_WRAP_PAIR(StreamBeginCapture_v1, StreamBeginCapture_v1_ptsz, nz::shim::begin_capture_v1, (CUstream st), (st))
NZ_WRAP_PAIR(StreamBeginCapture_v2, StreamBeginCapture_v2_ptsz, nz::shim::begin_capture,
             (CUstream st, CUstreamCaptureMode mode), (st, mode))
NZ_WRAP_PAIR(StreamBeginCaptureToGraph, StreamBeginCaptureToGraph_ptsz,
             nz::shim::begin_capture_to_graph,
             (CUstream st, CUgraph g, const CUgraphNode* deps, const CUgraphEdgeData* data, size_t n,
              CUstreamCaptureMode mode),
             (st, g, deps, data, n, mode))
NZ_WRAP_PAIR(StreamEndCapture, StreamEndCapture_ptsz, nz::shim::end_capture,
             (CUstream st, CUgraph* graph), (st, graph))
NZ_WRAP_PAIR(GraphInstantiateWithParams, GraphInstantiateWithParams_ptsz,
             nz::shim::instantiate_with_params,
             (CUgraphExec * exec, CUgraph g, CUDA_GRAPH_INSTANTIATE_PARAMS* p), (exec, g, p))
NZ_WRAP_PAIR(GraphLaunch, GraphLaunch_ptsz, nz::shim::graph_launch, (CUgraphExec exec, CUstream st),
             (exec, st))

NZ_WRAPPER CUresult nzw_GraphInstantiateWithFlags(CUgraphExec* exec, CUgraph g,
                                                  unsigned long long flags) noexcept {
  NZ_ENTER(GraphInstantiateWithFlags);
  auto real = real_of<CUresult (*)(CUgraphExec*, CUgraph, unsigned long long)>(
      Hook::GraphInstantiateWithFlags);
  if (!real) return nz::shim::missing_entry(Hook::GraphInstantiateWithFlags);
  nz::rt::GraphContents contents;
  if (nz::rt::active()) {
    if (CUresult r = nz::shim::before_instantiate(g, "cuGraphInstantiate", contents); r != CUDA_SUCCESS) return r;
  }
  CUresult r = real(exec, g, flags);
  if (r == CUDA_SUCCESS && exec && nz::rt::active()) nz::shim::after_instantiate(*exec, g, false);
  return r;
}

// The CUDA 10/11 entry points pin like the 12.x ones.
NZ_WRAPPER CUresult nzw_GraphInstantiate_v1(CUgraphExec* exec, CUgraph g, CUgraphNode* error_node, char* log_buffer,
                                            size_t log_size) noexcept {
  NZ_ENTER(GraphInstantiate_v1);
  auto real = real_of<CUresult (*)(CUgraphExec*, CUgraph, CUgraphNode*, char*, size_t)>(Hook::GraphInstantiate_v1);
  if (!real) return nz::shim::missing_entry(Hook::GraphInstantiate_v1);
  nz::rt::GraphContents contents;
  if (nz::rt::active()) {
    if (CUresult r = nz::shim::before_instantiate(g, "cuGraphInstantiate", contents); r != CUDA_SUCCESS) return r;
  }
  CUresult r = real(exec, g, error_node, log_buffer, log_size);
  if (r == CUDA_SUCCESS && exec && nz::rt::active()) nz::shim::after_instantiate(*exec, g, false);
  return r;
}

NZ_WRAPPER CUresult nzw_GraphInstantiate_v2(CUgraphExec* exec, CUgraph g, CUgraphNode* error_node, char* log_buffer,
                                            size_t log_size) noexcept {
  NZ_ENTER(GraphInstantiate_v2);
  auto real = real_of<CUresult (*)(CUgraphExec*, CUgraph, CUgraphNode*, char*, size_t)>(Hook::GraphInstantiate_v2);
  if (!real) return nz::shim::missing_entry(Hook::GraphInstantiate_v2);
  nz::rt::GraphContents contents;
  if (nz::rt::active()) {
    if (CUresult r = nz::shim::before_instantiate(g, "cuGraphInstantiate", contents); r != CUDA_SUCCESS) return r;
  }
  CUresult r = real(exec, g, error_node, log_buffer, log_size);
  if (r == CUDA_SUCCESS && exec && nz::rt::active()) nz::shim::after_instantiate(*exec, g, false);
  return r;
}

// An updated exec replays the new graph: it pins that graph's ranges instead.
// `call()` makes the real call in the ABI the program asked for.
namespace nz::shim {
namespace {
template <typename Call>
CUresult update_exec(CUgraphExec exec, CUgraph g, Call&& call) noexcept {
  rt::GraphContents contents;
  if (rt::active()) {
    if (CUresult r = before_instantiate(g, "cuGraphExecUpdate", contents); r != CUDA_SUCCESS) return r;
  }
  const CUresult r = call();
  if (r == CUDA_SUCCESS && rt::active()) after_instantiate(exec, g, true);
  return r;
}
}  // namespace
}  // namespace nz::shim

// The CUDA 10.2-11 ABI (error node and result as two out-parameters), then 12.x's.
NZ_WRAPPER CUresult nzw_GraphExecUpdate_v1(CUgraphExec exec, CUgraph g, CUgraphNode* error_node,
                                           CUgraphExecUpdateResult* result) noexcept {
  NZ_ENTER(GraphExecUpdate_v1);
  auto real = real_of<CUresult (*)(CUgraphExec, CUgraph, CUgraphNode*, CUgraphExecUpdateResult*)>(
      Hook::GraphExecUpdate_v1);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecUpdate_v1);
  return nz::shim::update_exec(exec, g, [&] { return real(exec, g, error_node, result); });
}

NZ_WRAPPER CUresult nzw_GraphExecUpdate_v2(CUgraphExec exec, CUgraph g, CUgraphExecUpdateResultInfo* info) noexcept {
  NZ_ENTER(GraphExecUpdate_v2);
  auto real = real_of<CUresult (*)(CUgraphExec, CUgraph, CUgraphExecUpdateResultInfo*)>(Hook::GraphExecUpdate_v2);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecUpdate_v2);
  return nz::shim::update_exec(exec, g, [&] { return real(exec, g, info); });
}

// An exec's kernel node given new parameters: what they point at is pinned
// for the exec first (the graph's node keeps its own).
namespace nz::shim {
namespace {
// An exec node given new parameters: what they touch is staged and pinned
// for the exec before the call, and where they read is kept (memory tagged
// there later is pinned for it). `describe` fills the contents.
template <typename Describe>
CUresult pin_exec_node(CUgraphExec exec, CUgraphNode node, const char* api, Describe&& describe) noexcept {
  if (!rt::active()) return CUDA_SUCCESS;
  rt::GraphContents contents;
  try {
    describe(contents);
  } catch (...) {
    contents.complete = false;
  }
  // Where it reads from now on, before anything is staged (memory tagged
  // there later is pinned for the exec; a failed call only pins a little more).
  rt::note_graph_reads(nullptr, exec, contents);
  const CUresult r = rt::on_exec_node_params(exec, node, contents);
  if (r != CUDA_SUCCESS)
    log_line("{}: cannot stage what the node reads (error {}); the call fails", api, static_cast<int>(r));
  return r;
}

template <typename Params>
CUresult pin_exec_kernel_params(CUgraphExec exec, CUgraphNode node, const Params* p, CUkernel kernel) noexcept {
  if (p == nullptr) return CUDA_SUCCESS;
  return pin_exec_node(exec, node, "cuGraphExecKernelNodeSetParams", [&](rt::GraphContents& c) {
    c.launches.push_back(node_launch(p->func, kernel, p->kernelParams, p->extra));
  });
}

}  // namespace
}  // namespace nz::shim

NZ_WRAPPER CUresult nzw_GraphExecKernelNodeSetParams_v2(CUgraphExec exec, CUgraphNode node,
                                                        const CUDA_KERNEL_NODE_PARAMS_v2* p) noexcept {
  NZ_ENTER(GraphExecKernelNodeSetParams_v2);
  auto real = real_of<decltype(&nzw_GraphExecKernelNodeSetParams_v2)>(Hook::GraphExecKernelNodeSetParams_v2);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecKernelNodeSetParams_v2);
  if (CUresult r = nz::shim::pin_exec_kernel_params(exec, node, p, p ? p->kern : nullptr); r != CUDA_SUCCESS) return r;
  return real(exec, node, p);
}

NZ_WRAPPER CUresult nzw_GraphExecKernelNodeSetParams_v1(CUgraphExec exec, CUgraphNode node,
                                                        const CUDA_KERNEL_NODE_PARAMS_v1* p) noexcept {
  NZ_ENTER(GraphExecKernelNodeSetParams_v1);
  auto real = real_of<decltype(&nzw_GraphExecKernelNodeSetParams_v1)>(Hook::GraphExecKernelNodeSetParams_v1);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecKernelNodeSetParams_v1);
  if (CUresult r = nz::shim::pin_exec_kernel_params(exec, node, p, nullptr); r != CUDA_SUCCESS) return r;
  return real(exec, node, p);
}

NZ_WRAPPER CUresult nzw_GraphExecMemcpyNodeSetParams(CUgraphExec exec, CUgraphNode node, const CUDA_MEMCPY3D* p,
                                                     CUcontext ctx) noexcept {
  NZ_ENTER(GraphExecMemcpyNodeSetParams);
  auto real = real_of<decltype(&nzw_GraphExecMemcpyNodeSetParams)>(Hook::GraphExecMemcpyNodeSetParams);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecMemcpyNodeSetParams);
  if (p != nullptr) {
    CUresult r = nz::shim::pin_exec_node(exec, node, "cuGraphExecMemcpyNodeSetParams",
                                         [&](nz::rt::GraphContents& c) { nz::shim::add_copy_node(*p, c); });
    if (r != CUDA_SUCCESS) return r;
  }
  return real(exec, node, p, ctx);
}

NZ_WRAPPER CUresult nzw_GraphExecMemsetNodeSetParams(CUgraphExec exec, CUgraphNode node,
                                                     const CUDA_MEMSET_NODE_PARAMS* p, CUcontext ctx) noexcept {
  NZ_ENTER(GraphExecMemsetNodeSetParams);
  auto real = real_of<decltype(&nzw_GraphExecMemsetNodeSetParams)>(Hook::GraphExecMemsetNodeSetParams);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecMemsetNodeSetParams);
  if (p != nullptr) {
    CUresult r = nz::shim::pin_exec_node(exec, node, "cuGraphExecMemsetNodeSetParams",
                                         [&](nz::rt::GraphContents& c) { nz::shim::add_memset_node(*p, c); });
    if (r != CUDA_SUCCESS) return r;
  }
  return real(exec, node, p, ctx);
}

NZ_WRAPPER CUresult nzw_GraphExecBatchMemOpNodeSetParams(CUgraphExec exec, CUgraphNode node,
                                                         const CUDA_BATCH_MEM_OP_NODE_PARAMS* p) noexcept {
  NZ_ENTER(GraphExecBatchMemOpNodeSetParams);
  auto real = real_of<decltype(&nzw_GraphExecBatchMemOpNodeSetParams)>(Hook::GraphExecBatchMemOpNodeSetParams);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecBatchMemOpNodeSetParams);
  if (p != nullptr) {
    CUresult r = nz::shim::pin_exec_node(exec, node, "cuGraphExecBatchMemOpNodeSetParams",
                                         [&](nz::rt::GraphContents& c) { nz::shim::add_memops_node(*p, c); });
    if (r != CUDA_SUCCESS) return r;
  }
  return real(exec, node, p);
}

// The child graph is read whole: its nodes replace the node's old ones.
NZ_WRAPPER CUresult nzw_GraphExecChildGraphNodeSetParams(CUgraphExec exec, CUgraphNode node, CUgraph child) noexcept {
  NZ_ENTER(GraphExecChildGraphNodeSetParams);
  auto real = real_of<decltype(&nzw_GraphExecChildGraphNodeSetParams)>(Hook::GraphExecChildGraphNodeSetParams);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecChildGraphNodeSetParams);
  if (child != nullptr) {
    CUresult r = nz::shim::pin_exec_node(exec, node, "cuGraphExecChildGraphNodeSetParams",
                                         [&](nz::rt::GraphContents& c) { nz::shim::list_graph_contents(child, c); });
    if (r != CUDA_SUCCESS) return r;
  }
  return real(exec, node, child);
}

// The generic setter (CUDA 12.2+), any node kind.
NZ_WRAPPER CUresult nzw_GraphExecNodeSetParams(CUgraphExec exec, CUgraphNode node, CUgraphNodeParams* p) noexcept {
  NZ_ENTER(GraphExecNodeSetParams);
  auto real = real_of<decltype(&nzw_GraphExecNodeSetParams)>(Hook::GraphExecNodeSetParams);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecNodeSetParams);
  if (p != nullptr) {
    CUresult r = nz::shim::pin_exec_node(exec, node, "cuGraphExecNodeSetParams",
                                         [&](nz::rt::GraphContents& c) { nz::shim::add_node_params(*p, c); });
    if (r != CUDA_SUCCESS) return r;
  }
  return real(exec, node, p);
}

NZ_WRAPPER CUresult nzw_TensorMapReplaceAddress(CUtensorMap* map, void* address) noexcept {
  NZ_ENTER(TensorMapReplaceAddress);
  auto real = real_of<CUresult (*)(CUtensorMap*, void*)>(Hook::TensorMapReplaceAddress);
  if (!real) return nz::shim::missing_entry(Hook::TensorMapReplaceAddress);
  CUtensorMap before;
  if (map != nullptr) std::memcpy(&before, map, sizeof before);
  CUresult r = real(map, address);
  if (r == CUDA_SUCCESS && map != nullptr && nz::rt::active())
    nz::rt::on_tensor_map_replaced(&before, map, reinterpret_cast<CUdeviceptr>(address));
  return r;
}

NZ_WRAPPER CUresult nzw_GraphExecDestroy(CUgraphExec exec) noexcept {
  NZ_ENTER(GraphExecDestroy);
  auto real = real_of<CUresult (*)(CUgraphExec)>(Hook::GraphExecDestroy);
  if (!real) return nz::shim::missing_entry(Hook::GraphExecDestroy);
  // Before the handle dies (and may be reused by the driver).
  if (nz::rt::active()) nz::rt::on_graph_exec_destroy(exec);
  return real(exec);
}

NZ_WRAPPER CUresult nzw_GraphDestroy(CUgraph graph) noexcept {
  NZ_ENTER(GraphDestroy);
  auto real = real_of<CUresult (*)(CUgraph)>(Hook::GraphDestroy);
  if (!real) return nz::shim::missing_entry(Hook::GraphDestroy);
  // A captured graph holds pins on the ranges it uses; release them before the
  // handle dies (and may be reused by the driver).
  // Both only while active: in a child forked after CUDA started the list's
  // lock may be held for good by a parent thread the child does not have
  // (and only an active runtime records graphs in it).
  if (nz::rt::active()) {
    nz::rt::on_graph_destroy(graph);
    nz::shim::forget_graph(graph);
  }
  return real(graph);
}

NZ_WRAPPER CUresult nzw_TensorMapEncodeTiled(CUtensorMap* map, CUtensorMapDataType type,
                                             cuuint32_t rank, void* global, const cuuint64_t* dims,
                                             const cuuint64_t* strides, const cuuint32_t* box,
                                             const cuuint32_t* elem_strides,
                                             CUtensorMapInterleave interleave,
                                             CUtensorMapSwizzle swizzle,
                                             CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob) noexcept {
  NZ_ENTER(TensorMapEncodeTiled);
  auto real = real_of<decltype(&nzw_TensorMapEncodeTiled)>(Hook::TensorMapEncodeTiled);
  if (!real) return nz::shim::missing_entry(Hook::TensorMapEncodeTiled);
  CUresult r = real(map, type, rank, global, dims, strides, box, elem_strides, interleave, swizzle, l2,
                    oob);
  nz::shim::report_tensor_map(r, map, type, rank, global, dims, strides, interleave == CU_TENSOR_MAP_INTERLEAVE_NONE);
  return r;
}

NZ_WRAPPER CUresult nzw_TensorMapEncodeIm2col(
    CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* global, const cuuint64_t* dims,
    const cuuint64_t* strides, const int* lower, const int* upper, cuuint32_t channels,
    cuuint32_t pixels, const cuuint32_t* elem_strides, CUtensorMapInterleave interleave,
    CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob) noexcept {
  NZ_ENTER(TensorMapEncodeIm2col);
  auto real = real_of<decltype(&nzw_TensorMapEncodeIm2col)>(Hook::TensorMapEncodeIm2col);
  if (!real) return nz::shim::missing_entry(Hook::TensorMapEncodeIm2col);
  CUresult r = real(map, type, rank, global, dims, strides, lower, upper, channels, pixels,
                    elem_strides, interleave, swizzle, l2, oob);
  nz::shim::report_tensor_map(r, map, type, rank, global, dims, strides, false);
  return r;
}

NZ_WRAPPER CUresult nzw_TensorMapEncodeIm2colWide(
    CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* global, const cuuint64_t* dims,
    const cuuint64_t* strides, int lower_w, int upper_w, cuuint32_t channels, cuuint32_t pixels,
    const cuuint32_t* elem_strides, CUtensorMapInterleave interleave, CUtensorMapIm2ColWideMode mode,
    CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob) noexcept {
  NZ_ENTER(TensorMapEncodeIm2colWide);
  auto real = real_of<decltype(&nzw_TensorMapEncodeIm2colWide)>(Hook::TensorMapEncodeIm2colWide);
  if (!real) return nz::shim::missing_entry(Hook::TensorMapEncodeIm2colWide);
  CUresult r = real(map, type, rank, global, dims, strides, lower_w, upper_w, channels, pixels,
                    elem_strides, interleave, mode, swizzle, l2, oob);
  nz::shim::report_tensor_map(r, map, type, rank, global, dims, strides, false);
  return r;
}
