// graph_contents.h: what a graph's nodes touch, read back from the real
// driver's node getters (cuGraphGetNodes, cuGraphNodeGetType,
// cuGraphKernelNodeGetParams, ...) and described to the runtime as launches
// and byte ranges (hooks.h GraphContents). Description only: what to do
// with it is the runtime's.
#pragma once

#include <cuda.h>

#include "runtime/hooks.h"

namespace nz::shim {

// Lists `graph`'s kernel, memcpy, memset and batch memop nodes, child graphs
// flattened.
// A node whose kind or parameters cannot be read leaves `out.complete` false,
// unless a stream capture made it.
void list_graph_contents(CUgraph graph, rt::GraphContents& out) noexcept;

// A memcpy or memset node's device ranges, appended to `out.spans`.
void add_copy_node(const CUDA_MEMCPY3D& p, rt::GraphContents& out);    // may throw
void add_memset_node(const CUDA_MEMSET_NODE_PARAMS& p, rt::GraphContents& out);  // may throw
// A batch memory operation node's words (written or waited on).
void add_memops_node(const CUDA_BATCH_MEM_OP_NODE_PARAMS& p, rt::GraphContents& out);  // may throw

// Which nodes stream captures made (their work passed our hooks): around
// cuStreamBeginCaptureToGraph (the nodes already there are not), at
// cuStreamEndCapture, and forgotten at cuGraphDestroy.
void note_capture_into(CUstream stream, CUgraph graph) noexcept;
void note_capture_end(CUstream stream, CUgraph graph) noexcept;
void forget_graph(CUgraph graph) noexcept;

// What one node's generic parameters (cuGraphExecNodeSetParams) touch;
// kinds it does not know make `out` incomplete.
void add_node_params(const CUgraphNodeParams& p, rt::GraphContents& out);  // may throw

// The launch a kernel node describes: by CUfunction, or by CUkernel when the
// function is null (or is a CUkernel the program got from cuLibraryGetKernel).
rt::LaunchDesc node_launch(CUfunction func, CUkernel kernel, void** params, void** extra) noexcept;

// Before a graph is instantiated (or an exec updated to it), runtime
// active: lists its nodes into `contents` and, for a graph no stream capture
// produced, stages and pins what they touch. An error fails the caller's call
// (one `neuzip:` line says why).
CUresult before_instantiate(CUgraph graph, const char* api, rt::GraphContents& contents) noexcept;
// After the call succeeded: the exec takes the graph's pins and remembers
// where its nodes read (memory tagged there later is pinned for it).
void after_instantiate(CUgraphExec exec, CUgraph graph, bool update) noexcept;

}  // namespace nz::shim
