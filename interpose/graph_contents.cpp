// graph_contents.cpp: see graph_contents.h.
#include "graph_contents.h"

#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kernel_registry.h"
#include "real_driver.h"
#include "shim_log.h"
#include "transfer_spans.h"

namespace nz::shim {
namespace {

// The node getters of the real driver, resolved once (null where it has none).
struct NodeGetters {
  CUresult (*get_nodes)(CUgraph, CUgraphNode*, size_t*);
  CUresult (*get_type)(CUgraphNode, CUgraphNodeType*);
  CUresult (*kernel_params)(CUgraphNode, CUDA_KERNEL_NODE_PARAMS_v2*);
  CUresult (*kernel_params_v1)(CUgraphNode, CUDA_KERNEL_NODE_PARAMS_v1*);  // drivers before 12.0
  CUresult (*memcpy_params)(CUgraphNode, CUDA_MEMCPY3D*);
  CUresult (*memset_params)(CUgraphNode, CUDA_MEMSET_NODE_PARAMS*);
  CUresult (*child_graph)(CUgraphNode, CUgraph*);
  CUresult (*memops_params)(CUgraphNode, CUDA_BATCH_MEM_OP_NODE_PARAMS*);
};

const NodeGetters& getters() noexcept {
  static const NodeGetters g = [] {
    NodeGetters n{};
    n.get_nodes = reinterpret_cast<decltype(n.get_nodes)>(real_driver_symbol("cuGraphGetNodes"));
    n.get_type = reinterpret_cast<decltype(n.get_type)>(real_driver_symbol("cuGraphNodeGetType"));
    n.kernel_params = reinterpret_cast<decltype(n.kernel_params)>(real_driver_symbol("cuGraphKernelNodeGetParams_v2"));
    n.kernel_params_v1 =
        reinterpret_cast<decltype(n.kernel_params_v1)>(real_driver_symbol("cuGraphKernelNodeGetParams"));
    n.memcpy_params = reinterpret_cast<decltype(n.memcpy_params)>(real_driver_symbol("cuGraphMemcpyNodeGetParams"));
    n.memset_params = reinterpret_cast<decltype(n.memset_params)>(real_driver_symbol("cuGraphMemsetNodeGetParams"));
    n.child_graph = reinterpret_cast<decltype(n.child_graph)>(real_driver_symbol("cuGraphChildGraphNodeGetGraph"));
    n.memops_params =
        reinterpret_cast<decltype(n.memops_params)>(real_driver_symbol("cuGraphBatchMemOpNodeGetParams"));
    return n;
  }();
  return g;
}

// Node kinds that touch no memory the program allocated with cuMemAlloc.
bool touches_no_memory(CUgraphNodeType type) {
  switch (type) {
    case CU_GRAPH_NODE_TYPE_EMPTY:
    case CU_GRAPH_NODE_TYPE_HOST:
    case CU_GRAPH_NODE_TYPE_WAIT_EVENT:
    case CU_GRAPH_NODE_TYPE_EVENT_RECORD:
    case CU_GRAPH_NODE_TYPE_EXT_SEMAS_SIGNAL:
    case CU_GRAPH_NODE_TYPE_EXT_SEMAS_WAIT:
    case CU_GRAPH_NODE_TYPE_MEM_ALLOC:
    case CU_GRAPH_NODE_TYPE_MEM_FREE:
      return true;
    default:
      return false;
  }
}

constexpr int kMaxDepth = 8;  // child graphs nested deeper: not read (complete = false)

// Nodes stream captures made, per graph: our launch and copy hooks saw their
// work as it was captured, so one the getters cannot read does not make a
// listing incomplete. Nodes added by the node API (or present before a
// capture into an existing graph) are not in it.
struct CapturedNodes {
  std::mutex mu;
  std::unordered_map<CUgraph, std::unordered_set<CUgraphNode>> by_graph;
  std::unordered_map<CUstream, std::unordered_set<CUgraphNode>> before_capture;  // cuStreamBeginCaptureToGraph
};
CapturedNodes& captured() {
  static CapturedNodes& c = *new CapturedNodes;  // never destroyed: hooks may run at exit
  return c;
}

std::vector<CUgraphNode> nodes_of(CUgraph graph) {
  const NodeGetters& g = getters();
  size_t count = 0;
  if (!g.get_nodes || g.get_nodes(graph, nullptr, &count) != CUDA_SUCCESS) return {};
  std::vector<CUgraphNode> nodes(count);
  if (count > 0 && g.get_nodes(graph, nodes.data(), &count) != CUDA_SUCCESS) return {};
  nodes.resize(count);
  return nodes;
}

bool kernel_node_params(CUgraphNode node, CUDA_KERNEL_NODE_PARAMS_v2& p) {
  const NodeGetters& g = getters();
  if (g.kernel_params) return g.kernel_params(node, &p) == CUDA_SUCCESS;
  if (!g.kernel_params_v1) return false;
  CUDA_KERNEL_NODE_PARAMS_v1 v1{};
  if (g.kernel_params_v1(node, &v1) != CUDA_SUCCESS) return false;
  p = CUDA_KERNEL_NODE_PARAMS_v2{};
  p.func = v1.func;
  p.gridDimX = v1.gridDimX;
  p.gridDimY = v1.gridDimY;
  p.gridDimZ = v1.gridDimZ;
  p.blockDimX = v1.blockDimX;
  p.blockDimY = v1.blockDimY;
  p.blockDimZ = v1.blockDimZ;
  p.sharedMemBytes = v1.sharedMemBytes;
  p.kernelParams = v1.kernelParams;
  p.extra = v1.extra;
  return true;
}

// `trusted`: the nodes of `graph` a capture made (null: none), whose
// unreadable parts our hooks saw; a trusted child graph node's nodes too.
void list(CUgraph graph, rt::GraphContents& out, int depth, const std::unordered_set<CUgraphNode>* trusted,
          bool all_trusted) {
  const NodeGetters& g = getters();
  if (!g.get_nodes || !g.get_type || depth > kMaxDepth) {
    out.complete = out.complete && all_trusted;
    return;
  }
  size_t count = 0;
  if (g.get_nodes(graph, nullptr, &count) != CUDA_SUCCESS) {
    out.complete = out.complete && all_trusted;
    return;
  }
  std::vector<CUgraphNode> nodes(count);
  if (count > 0 && g.get_nodes(graph, nodes.data(), &count) != CUDA_SUCCESS) {
    out.complete = out.complete && all_trusted;
    return;
  }
  nodes.resize(count);
  for (CUgraphNode node : nodes) {
    const bool node_trusted = all_trusted || (trusted != nullptr && trusted->count(node) > 0);
    // A node it cannot read: fine if a capture made it, else it may touch anything.
    auto unreadable = [&] { out.complete = out.complete && node_trusted; };
    CUgraphNodeType type;
    if (g.get_type(node, &type) != CUDA_SUCCESS) {
      unreadable();
      continue;
    }
    switch (type) {
      case CU_GRAPH_NODE_TYPE_KERNEL: {
        CUDA_KERNEL_NODE_PARAMS_v2 p{};
        if (!kernel_node_params(node, p)) {
          unreadable();
          break;
        }
        out.launches.push_back(node_launch(p.func, p.kern, p.kernelParams, p.extra));
        break;
      }
      case CU_GRAPH_NODE_TYPE_MEMCPY: {
        CUDA_MEMCPY3D p{};
        if (!g.memcpy_params || g.memcpy_params(node, &p) != CUDA_SUCCESS) {
          unreadable();
          break;
        }
        add_copy_node(p, out);
        break;
      }
      case CU_GRAPH_NODE_TYPE_MEMSET: {
        CUDA_MEMSET_NODE_PARAMS p{};
        if (!g.memset_params || g.memset_params(node, &p) != CUDA_SUCCESS) {
          unreadable();
          break;
        }
        add_memset_node(p, out);
        break;
      }
      case CU_GRAPH_NODE_TYPE_GRAPH: {
        CUgraph child = nullptr;
        if (!g.child_graph || g.child_graph(node, &child) != CUDA_SUCCESS || child == nullptr) {
          unreadable();
          break;
        }
        list(child, out, depth + 1, nullptr, node_trusted);
        break;
      }
      case CU_GRAPH_NODE_TYPE_BATCH_MEM_OP: {
        CUDA_BATCH_MEM_OP_NODE_PARAMS p{};
        if (!g.memops_params || g.memops_params(node, &p) != CUDA_SUCCESS) {
          unreadable();
          break;
        }
        add_memops_node(p, out);
        break;
      }
      // Conditional bodies, kinds newer than this build: not read, so they
      // may touch anything.
      default:
        if (!touches_no_memory(type)) unreadable();
        break;
    }
  }
}

}  // namespace

void add_copy_node(const CUDA_MEMCPY3D& p, rt::GraphContents& out) {
  const SpanPair pair = spans_of(p);
  for (size_t i = 0; i < pair.count; ++i) out.spans.push_back(pair.spans[i]);
}

void add_memset_node(const CUDA_MEMSET_NODE_PARAMS& p, rt::GraphContents& out) {
  const size_t row = p.width * p.elementSize;
  const size_t bytes = p.height > 1 ? pitched_extent(p.pitch, row, p.height) : row;
  out.spans.push_back(rt::Span{p.dst, bytes, rt::Access::kWrite});
}

void add_memops_node(const CUDA_BATCH_MEM_OP_NODE_PARAMS& p, rt::GraphContents& out) {
  if (p.count > 0 && p.paramArray == nullptr) return;  // the driver refuses it
  append_memop_spans(p.paramArray, p.count, out.spans);
}

void add_node_params(const CUgraphNodeParams& p, rt::GraphContents& out) {
  switch (p.type) {
    case CU_GRAPH_NODE_TYPE_KERNEL:
      out.launches.push_back(node_launch(p.kernel.func, p.kernel.kern, p.kernel.kernelParams, p.kernel.extra));
      break;
    case CU_GRAPH_NODE_TYPE_MEMCPY:
      add_copy_node(p.memcpy.copyParams, out);
      break;
    case CU_GRAPH_NODE_TYPE_MEMSET: {
      CUDA_MEMSET_NODE_PARAMS m{};
      m.dst = p.memset.dst;
      m.pitch = p.memset.pitch;
      m.value = p.memset.value;
      m.elementSize = p.memset.elementSize;
      m.width = p.memset.width;
      m.height = p.memset.height;
      add_memset_node(m, out);
      break;
    }
    case CU_GRAPH_NODE_TYPE_GRAPH:
      list_graph_contents(p.graph.graph, out);
      break;
    case CU_GRAPH_NODE_TYPE_BATCH_MEM_OP: {
      CUDA_BATCH_MEM_OP_NODE_PARAMS m{};
      m.ctx = p.memOp.ctx;
      m.count = p.memOp.count;
      m.paramArray = p.memOp.paramArray;
      m.flags = p.memOp.flags;
      add_memops_node(m, out);
      break;
    }
    default:
      if (!touches_no_memory(p.type)) out.complete = false;
      break;
  }
}

rt::LaunchDesc node_launch(CUfunction func, CUkernel kernel, void** params, void** extra) noexcept {
  rt::LaunchDesc d{};
  if (func == nullptr) d.kernel = kernel;
  else if (is_known_kernel(func)) d.kernel = reinterpret_cast<CUkernel>(func);
  else d.func = func;
  d.kernel_params = params;
  d.extra = extra;
  d.api = "graph kernel node";
  return d;
}

void list_graph_contents(CUgraph graph, rt::GraphContents& out) noexcept {
  try {
    CapturedNodes& c = captured();
    std::unordered_set<CUgraphNode> trusted;
    {
      std::lock_guard lock(c.mu);
      if (auto it = c.by_graph.find(graph); it != c.by_graph.end()) trusted = it->second;
    }
    list(graph, out, 0, &trusted, false);
  } catch (...) {
    out.complete = false;  // no memory to list it: assume it touches anything
  }
}

void note_capture_into(CUstream stream, CUgraph graph) noexcept {
  try {
    std::vector<CUgraphNode> before = nodes_of(graph);
    CapturedNodes& c = captured();
    std::lock_guard lock(c.mu);
    c.before_capture[stream] = std::unordered_set<CUgraphNode>(before.begin(), before.end());
  } catch (...) {
  }
}

void note_capture_end(CUstream stream, CUgraph graph) noexcept {
  CapturedNodes& c = captured();
  try {
    std::vector<CUgraphNode> nodes = graph != nullptr ? nodes_of(graph) : std::vector<CUgraphNode>{};
    std::lock_guard lock(c.mu);
    auto before = c.before_capture.find(stream);
    if (graph != nullptr) {
      auto& made = c.by_graph[graph];
      for (CUgraphNode n : nodes)
        if (before == c.before_capture.end() || before->second.count(n) == 0) made.insert(n);
    }
    if (before != c.before_capture.end()) c.before_capture.erase(before);
  } catch (...) {
    // Not recorded: its unreadable nodes then count as touching anything (the safe side).
  }
}

void forget_graph(CUgraph graph) noexcept {
  CapturedNodes& c = captured();
  std::lock_guard lock(c.mu);
  c.by_graph.erase(graph);
}

CUresult before_instantiate(CUgraph graph, const char* api, rt::GraphContents& contents) noexcept {
  if (graph == nullptr) return CUDA_SUCCESS;
  // Captured graphs too: nodes added after the capture, and where they read
  // (memory tagged there later), before anything is staged.
  list_graph_contents(graph, contents);
  rt::note_graph_reads(graph, nullptr, contents);
  const CUresult r = rt::on_graph_contents(graph, contents);
  if (r != CUDA_SUCCESS)
    log_line("{}: cannot stage what the graph's nodes read (error {}); the call fails", api, static_cast<int>(r));
  return r;
}

void after_instantiate(CUgraphExec exec, CUgraph graph, bool update) noexcept {
  // The graph's anchors pass to the exec with its pins.
  if (update) rt::on_graph_exec_update(exec, graph);
  else rt::on_graph_instantiate(exec, graph);
}

}  // namespace nz::shim
