// Graphs built node by node: cuGraphAdd{Kernel,Memcpy,Memset,ChildGraph,BatchMemOp,Empty}Node,
// the node getters (type, kernel, memcpy, memset and batch memop parameters,
// child graph) and the exec setters
// cuGraphExec{Kernel,Memcpy,Memset,ChildGraph,BatchMemOp}NodeSetParams and
// cuGraphExecNodeSetParams (those kinds). As with captures, a graph is the list of
// its items in the order they were added (a valid order: a node's
// dependencies exist before it), replayed in that order; dependencies are
// checked (they must be nodes of the same graph) but add no concurrency.
// Captured kernels, copies and memsets answer the getters too (their
// parameters are kept with the item); captured copies name both sides as
// CU_MEMORYTYPE_UNIFIED addresses.
#include <cuda.h>

#include "sim_graph_nodes.h"
#include "sim_module.h"

// The CUDA 10-11 kernel-node ABI (CUDA_KERNEL_NODE_PARAMS_v1), beside _v2.
#undef cuGraphAddKernelNode
#undef cuGraphKernelNodeGetParams
#undef cuGraphExecKernelNodeSetParams

namespace nzsim {

Graph::~Graph() = default;

NodeParams::~NodeParams() { delete reinterpret_cast<Graph*>(child); }

CUgraphNode node_handle(Graph* g, size_t index) {
  while (g->handles.size() <= index) {
    auto h = std::make_unique<GraphNodeHandle>();
    h->graph = g;
    h->index = g->handles.size();
    g->handles.push_back(std::move(h));
  }
  return reinterpret_cast<CUgraphNode>(g->handles[index].get());
}

namespace {

GraphNodeHandle* as_node(CUgraphNode n) {
  auto* h = reinterpret_cast<GraphNodeHandle*>(n);
  return h != nullptr && h->magic == GraphNodeHandle::kMagic ? h : nullptr;
}

// The item a node stands for, with its graph locked by the caller.
const WorkItem* item_of(GraphNodeHandle* h) {
  return h->index < h->graph->items.size() ? &h->graph->items[h->index] : nullptr;
}

CUresult add_item(CUgraphNode* out, CUgraph graph, const CUgraphNode* deps, size_t n, WorkItem item) {
  if (!out || !graph || (n > 0 && !deps)) return CUDA_ERROR_INVALID_VALUE;
  auto* g = reinterpret_cast<Graph*>(graph);
  std::lock_guard lock(g->mu);
  for (size_t i = 0; i < n; ++i) {
    GraphNodeHandle* d = as_node(deps[i]);
    if (!d || d->graph != g || d->index >= g->items.size()) return CUDA_ERROR_INVALID_VALUE;
  }
  g->items.push_back(std::move(item));
  *out = node_handle(g, g->items.size() - 1);
  return CUDA_SUCCESS;
}

CUresult kernel_node_item(CUfunction fn, CUkernel kern, const unsigned grid[3], const unsigned block[3],
                          unsigned shared, void** params, void** extra, WorkItem& out) {
  // A node names its kernel by CUfunction or, when func is null, by CUkernel.
  CUfunction handle = fn != nullptr ? fn : reinterpret_cast<CUfunction>(kern);
  std::shared_ptr<KernelPayload> p;
  if (CUresult r = pack_launch(handle, grid, block, shared, params, extra, p); r != CUDA_SUCCESS) return r;
  out = kernel_item(std::move(p));
  return CUDA_SUCCESS;
}

template <typename Params>
CUresult kernel_node_item(const Params* p, CUkernel kern, WorkItem& out) {
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  const unsigned grid[3] = {p->gridDimX, p->gridDimY, p->gridDimZ};
  const unsigned block[3] = {p->blockDimX, p->blockDimY, p->blockDimZ};
  return kernel_node_item(p->func, kern, grid, block, p->sharedMemBytes, p->kernelParams, p->extra, out);
}

template <typename Params>
CUresult get_kernel_params(CUgraphNode node, Params* out, CUkernel* kern) {
  GraphNodeHandle* h = as_node(node);
  if (!h || !out) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(h->graph->mu);
  const WorkItem* item = item_of(h);
  if (!item || !item->node || item->node->type != CU_GRAPH_NODE_TYPE_KERNEL) return CUDA_ERROR_INVALID_VALUE;
  const KernelPayload& k = *item->node->kernel;
  *out = Params{};
  out->func = k.fn;
  out->gridDimX = k.launch.grid.x;
  out->gridDimY = k.launch.grid.y;
  out->gridDimZ = k.launch.grid.z;
  out->blockDimX = k.launch.block.x;
  out->blockDimY = k.launch.block.y;
  out->blockDimZ = k.launch.block.z;
  out->sharedMemBytes = k.launch.shared_bytes;
  // Points into the node's own copy (valid while the node is unchanged), as on a driver.
  out->kernelParams = const_cast<void**>(k.pointers.data());
  out->extra = nullptr;
  if (kern) *kern = nullptr;
  return CUDA_SUCCESS;
}

template <typename Params>
CUresult exec_set_kernel_params(CUgraphExec exec, CUgraphNode node, const Params* p, CUkernel kern);

CUresult copy_node(const CUDA_MEMCPY3D* p, WorkItem& item) {
  if (CUresult r = copy_node_item(p, item); r != CUDA_SUCCESS) return r;
  auto node = std::make_shared<NodeParams>();
  node->type = CU_GRAPH_NODE_TYPE_MEMCPY;
  node->copy = *p;
  node->has_params = true;
  item.node = std::move(node);
  return CUDA_SUCCESS;
}

CUresult memset_node(const CUDA_MEMSET_NODE_PARAMS* p, WorkItem& item) {
  if (CUresult r = memset_node_item(p, item); r != CUDA_SUCCESS) return r;
  auto node = std::make_shared<NodeParams>();
  node->type = CU_GRAPH_NODE_TYPE_MEMSET;
  node->memset = *p;
  node->has_params = true;
  item.node = std::move(node);
  return CUDA_SUCCESS;
}

// A clone of `child` (as the driver makes) run in order inside one item.
WorkItem child_node(CUgraph child) {
  auto* clone = new Graph;
  auto node = std::make_shared<NodeParams>();
  node->type = CU_GRAPH_NODE_TYPE_GRAPH;
  node->child = reinterpret_cast<CUgraph>(clone);  // owned by the node from here
  {
    auto* c = reinterpret_cast<Graph*>(child);
    std::lock_guard lock(c->mu);
    clone->items = c->items;
  }
  WorkItem item;
  item.kind = ItemKind::kernel;
  item.label = "child graph";
  std::vector<WorkItem> items = clone->items;
  item.body = [items] {
    for (const WorkItem& i : items) {
      if (CUresult r = i.body(); r != CUDA_SUCCESS) return r;
    }
    return CUDA_SUCCESS;
  };
  item.node = std::move(node);
  return item;
}

// Replaces an exec's copy of `node` by `item`, when it is of the same type.
CUresult exec_replace(CUgraphExec exec, CUgraphNode node, CUgraphNodeType type, WorkItem item) {
  GraphNodeHandle* h = as_node(node);
  if (!exec || !h) return CUDA_ERROR_INVALID_VALUE;
  auto* e = reinterpret_cast<GraphExec*>(exec);
  // A node of the graph the exec was made from (not of a child graph's clone).
  if (h->graph != e->source || h->index >= e->items.size() || !e->items[h->index].node ||
      e->items[h->index].node->type != type)
    return CUDA_ERROR_INVALID_VALUE;
  e->items[h->index] = std::move(item);  // the graph's node keeps its own parameters
  return CUDA_SUCCESS;
}

template <typename Params>
CUresult exec_set_kernel_params(CUgraphExec exec, CUgraphNode node, const Params* p, CUkernel kern) {
  WorkItem item;
  if (CUresult r = kernel_node_item(p, kern, item); r != CUDA_SUCCESS) return r;
  return exec_replace(exec, node, CU_GRAPH_NODE_TYPE_KERNEL, std::move(item));
}

}  // namespace
}  // namespace nzsim

using namespace nzsim;

extern "C" {

CUresult CUDAAPI cuGraphAddKernelNode_v2(CUgraphNode* out, CUgraph graph, const CUgraphNode* deps, size_t n,
                                         const CUDA_KERNEL_NODE_PARAMS_v2* p) {
  NZ_REQUIRE_INIT();
  WorkItem item;
  if (CUresult r = kernel_node_item(p, p ? p->kern : nullptr, item); r != CUDA_SUCCESS) return r;
  return add_item(out, graph, deps, n, std::move(item));
}

CUresult CUDAAPI cuGraphAddKernelNode(CUgraphNode* out, CUgraph graph, const CUgraphNode* deps, size_t n,
                                      const CUDA_KERNEL_NODE_PARAMS_v1* p) {
  NZ_REQUIRE_INIT();
  WorkItem item;
  if (CUresult r = kernel_node_item(p, nullptr, item); r != CUDA_SUCCESS) return r;
  return add_item(out, graph, deps, n, std::move(item));
}

CUresult CUDAAPI cuGraphAddMemcpyNode(CUgraphNode* out, CUgraph graph, const CUgraphNode* deps, size_t n,
                                      const CUDA_MEMCPY3D* p, CUcontext) {
  NZ_REQUIRE_INIT();
  WorkItem item;
  if (CUresult r = copy_node(p, item); r != CUDA_SUCCESS) return r;
  return add_item(out, graph, deps, n, std::move(item));
}

CUresult CUDAAPI cuGraphAddMemsetNode(CUgraphNode* out, CUgraph graph, const CUgraphNode* deps, size_t n,
                                      const CUDA_MEMSET_NODE_PARAMS* p, CUcontext) {
  NZ_REQUIRE_INIT();
  WorkItem item;
  if (CUresult r = memset_node(p, item); r != CUDA_SUCCESS) return r;
  return add_item(out, graph, deps, n, std::move(item));
}

CUresult CUDAAPI cuGraphAddBatchMemOpNode(CUgraphNode* out, CUgraph graph, const CUgraphNode* deps, size_t n,
                                          const CUDA_BATCH_MEM_OP_NODE_PARAMS* p) {
  NZ_REQUIRE_INIT();
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  WorkItem item;
  if (CUresult r = memops_item(p->paramArray, p->count, p->flags, p->ctx, item); r != CUDA_SUCCESS) return r;
  return add_item(out, graph, deps, n, std::move(item));
}

CUresult CUDAAPI cuGraphAddEmptyNode(CUgraphNode* out, CUgraph graph, const CUgraphNode* deps, size_t n) {
  NZ_REQUIRE_INIT();
  WorkItem item;
  item.kind = ItemKind::control;
  item.label = "empty";
  item.body = [] { return CUDA_SUCCESS; };
  return add_item(out, graph, deps, n, std::move(item));
}

// The child is cloned (as the driver does): later changes to it do not
// reach this node. Its items run in order inside this one.
CUresult CUDAAPI cuGraphAddChildGraphNode(CUgraphNode* out, CUgraph graph, const CUgraphNode* deps, size_t n,
                                          CUgraph child) {
  NZ_REQUIRE_INIT();
  if (!child || child == graph) return CUDA_ERROR_INVALID_VALUE;
  return add_item(out, graph, deps, n, child_node(child));
}

CUresult CUDAAPI cuGraphNodeGetType(CUgraphNode node, CUgraphNodeType* type) {
  NZ_REQUIRE_INIT();
  GraphNodeHandle* h = as_node(node);
  if (!h || !type) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(h->graph->mu);
  const WorkItem* item = item_of(h);
  if (!item) return CUDA_ERROR_INVALID_VALUE;
  if (item->node) {
    *type = item->node->type;
  } else {
    switch (item->kind) {
      case ItemKind::kernel: *type = CU_GRAPH_NODE_TYPE_KERNEL; break;
      case ItemKind::copy: *type = CU_GRAPH_NODE_TYPE_MEMCPY; break;
      case ItemKind::memset: *type = CU_GRAPH_NODE_TYPE_MEMSET; break;
      case ItemKind::host_fn: *type = CU_GRAPH_NODE_TYPE_HOST; break;
      case ItemKind::control: *type = CU_GRAPH_NODE_TYPE_EMPTY; break;
    }
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphKernelNodeGetParams_v2(CUgraphNode node, CUDA_KERNEL_NODE_PARAMS_v2* p) {
  NZ_REQUIRE_INIT();
  return get_kernel_params(node, p, p ? &p->kern : nullptr);
}

CUresult CUDAAPI cuGraphKernelNodeGetParams(CUgraphNode node, CUDA_KERNEL_NODE_PARAMS_v1* p) {
  NZ_REQUIRE_INIT();
  return get_kernel_params(node, p, nullptr);
}

CUresult CUDAAPI cuGraphMemcpyNodeGetParams(CUgraphNode node, CUDA_MEMCPY3D* p) {
  NZ_REQUIRE_INIT();
  GraphNodeHandle* h = as_node(node);
  if (!h || !p) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(h->graph->mu);
  const WorkItem* item = item_of(h);
  if (!item || item->kind != ItemKind::copy) return CUDA_ERROR_INVALID_VALUE;
  if (!item->node || !item->node->has_params) return CUDA_ERROR_NOT_SUPPORTED;
  *p = item->node->copy;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphMemsetNodeGetParams(CUgraphNode node, CUDA_MEMSET_NODE_PARAMS* p) {
  NZ_REQUIRE_INIT();
  GraphNodeHandle* h = as_node(node);
  if (!h || !p) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(h->graph->mu);
  const WorkItem* item = item_of(h);
  if (!item || item->kind != ItemKind::memset) return CUDA_ERROR_INVALID_VALUE;
  if (!item->node || !item->node->has_params) return CUDA_ERROR_NOT_SUPPORTED;
  *p = item->node->memset;
  return CUDA_SUCCESS;
}

// The array answered lives with the node (valid while the node is unchanged).
CUresult CUDAAPI cuGraphBatchMemOpNodeGetParams(CUgraphNode node, CUDA_BATCH_MEM_OP_NODE_PARAMS* p) {
  NZ_REQUIRE_INIT();
  GraphNodeHandle* h = as_node(node);
  if (!h || !p) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(h->graph->mu);
  const WorkItem* item = item_of(h);
  if (!item || !item->node || item->node->type != CU_GRAPH_NODE_TYPE_BATCH_MEM_OP) return CUDA_ERROR_INVALID_VALUE;
  const NodeParams& n = *item->node;
  p->ctx = n.memop_ctx;
  p->count = static_cast<unsigned>(n.memops.size());
  p->paramArray = const_cast<CUstreamBatchMemOpParams*>(n.memops.data());
  p->flags = n.memop_flags;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphChildGraphNodeGetGraph(CUgraphNode node, CUgraph* graph) {
  NZ_REQUIRE_INIT();
  GraphNodeHandle* h = as_node(node);
  if (!h || !graph) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(h->graph->mu);
  const WorkItem* item = item_of(h);
  if (!item || !item->node || item->node->type != CU_GRAPH_NODE_TYPE_GRAPH) return CUDA_ERROR_INVALID_VALUE;
  *graph = item->node->child;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphExecKernelNodeSetParams_v2(CUgraphExec exec, CUgraphNode node,
                                                   const CUDA_KERNEL_NODE_PARAMS_v2* p) {
  NZ_REQUIRE_INIT();
  return exec_set_kernel_params(exec, node, p, p ? p->kern : nullptr);
}

CUresult CUDAAPI cuGraphExecKernelNodeSetParams(CUgraphExec exec, CUgraphNode node,
                                                const CUDA_KERNEL_NODE_PARAMS_v1* p) {
  NZ_REQUIRE_INIT();
  return exec_set_kernel_params(exec, node, p, nullptr);
}

CUresult CUDAAPI cuGraphExecMemcpyNodeSetParams(CUgraphExec exec, CUgraphNode node, const CUDA_MEMCPY3D* p,
                                                CUcontext) {
  NZ_REQUIRE_INIT();
  WorkItem item;
  if (CUresult r = copy_node(p, item); r != CUDA_SUCCESS) return r;
  return exec_replace(exec, node, CU_GRAPH_NODE_TYPE_MEMCPY, std::move(item));
}

CUresult CUDAAPI cuGraphExecMemsetNodeSetParams(CUgraphExec exec, CUgraphNode node,
                                                const CUDA_MEMSET_NODE_PARAMS* p, CUcontext) {
  NZ_REQUIRE_INIT();
  WorkItem item;
  if (CUresult r = memset_node(p, item); r != CUDA_SUCCESS) return r;
  return exec_replace(exec, node, CU_GRAPH_NODE_TYPE_MEMSET, std::move(item));
}

CUresult CUDAAPI cuGraphExecBatchMemOpNodeSetParams(CUgraphExec exec, CUgraphNode node,
                                                    const CUDA_BATCH_MEM_OP_NODE_PARAMS* p) {
  NZ_REQUIRE_INIT();
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  WorkItem item;
  if (CUresult r = memops_item(p->paramArray, p->count, p->flags, p->ctx, item); r != CUDA_SUCCESS) return r;
  return exec_replace(exec, node, CU_GRAPH_NODE_TYPE_BATCH_MEM_OP, std::move(item));
}

CUresult CUDAAPI cuGraphExecChildGraphNodeSetParams(CUgraphExec exec, CUgraphNode node, CUgraph child) {
  NZ_REQUIRE_INIT();
  if (!child) return CUDA_ERROR_INVALID_VALUE;
  return exec_replace(exec, node, CU_GRAPH_NODE_TYPE_GRAPH, child_node(child));
}

CUresult CUDAAPI cuGraphExecNodeSetParams(CUgraphExec exec, CUgraphNode node, CUgraphNodeParams* p) {
  NZ_REQUIRE_INIT();
  if (!p) return CUDA_ERROR_INVALID_VALUE;
  WorkItem item;
  switch (p->type) {
    case CU_GRAPH_NODE_TYPE_KERNEL:
      if (CUresult r = kernel_node_item(&p->kernel, p->kernel.kern, item); r != CUDA_SUCCESS) return r;
      break;
    case CU_GRAPH_NODE_TYPE_MEMCPY:
      if (CUresult r = copy_node(&p->memcpy.copyParams, item); r != CUDA_SUCCESS) return r;
      break;
    case CU_GRAPH_NODE_TYPE_MEMSET: {
      CUDA_MEMSET_NODE_PARAMS m{};
      m.dst = p->memset.dst;
      m.pitch = p->memset.pitch;
      m.value = p->memset.value;
      m.elementSize = p->memset.elementSize;
      m.width = p->memset.width;
      m.height = p->memset.height;
      if (CUresult r = memset_node(&m, item); r != CUDA_SUCCESS) return r;
      break;
    }
    case CU_GRAPH_NODE_TYPE_GRAPH:
      if (!p->graph.graph) return CUDA_ERROR_INVALID_VALUE;
      item = child_node(p->graph.graph);
      break;
    case CU_GRAPH_NODE_TYPE_BATCH_MEM_OP: {
      const CUDA_BATCH_MEM_OP_NODE_PARAMS_v2& m = p->memOp;
      if (CUresult r = memops_item(m.paramArray, m.count, m.flags, m.ctx, item); r != CUDA_SUCCESS) return r;
      break;
    }
    default:
      return CUDA_ERROR_NOT_SUPPORTED;  // other kinds are not simulated
  }
  return exec_replace(exec, node, p->type, std::move(item));
}

}  // extern "C"
