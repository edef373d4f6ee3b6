// graph_contents.cpp: see graph_contents.h.
#include "graph_contents.h"

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
  CUresult (*memcpy_params)(CUgraphNode, CUDA_MEMCPY3D*);
  CUresult (*memset_params)(CUgraphNode, CUDA_MEMSET_NODE_PARAMS*);
  CUresult (*child_graph)(CUgraphNode, CUgraph*);
};

const NodeGetters& getters() noexcept {
  static const NodeGetters g = [] {
    NodeGetters n{};
    n.get_nodes = reinterpret_cast<decltype(n.get_nodes)>(real_driver_symbol("cuGraphGetNodes"));
    n.get_type = reinterpret_cast<decltype(n.get_type)>(real_driver_symbol("cuGraphNodeGetType"));
    n.kernel_params = reinterpret_cast<decltype(n.kernel_params)>(real_driver_symbol("cuGraphKernelNodeGetParams_v2"));
    n.memcpy_params = reinterpret_cast<decltype(n.memcpy_params)>(real_driver_symbol("cuGraphMemcpyNodeGetParams"));
    n.memset_params = reinterpret_cast<decltype(n.memset_params)>(real_driver_symbol("cuGraphMemsetNodeGetParams"));
    n.child_graph = reinterpret_cast<decltype(n.child_graph)>(real_driver_symbol("cuGraphChildGraphNodeGetGraph"));
    return n;
  }();
  return g;
}

constexpr int kMaxDepth = 8;  // child graphs nested deeper: not read (complete = false)

void list(CUgraph graph, rt::GraphContents& out, int depth) {
  const NodeGetters& g = getters();
  if (!g.get_nodes || !g.get_type || depth > kMaxDepth) {
    out.complete = false;
    return;
  }
  size_t count = 0;
  if (g.get_nodes(graph, nullptr, &count) != CUDA_SUCCESS) {
    out.complete = false;
    return;
  }
  std::vector<CUgraphNode> nodes(count);
  if (count > 0 && g.get_nodes(graph, nodes.data(), &count) != CUDA_SUCCESS) {
    out.complete = false;
    return;
  }
  nodes.resize(count);
  for (CUgraphNode node : nodes) {
    CUgraphNodeType type;
    if (g.get_type(node, &type) != CUDA_SUCCESS) {
      out.complete = false;
      continue;
    }
    switch (type) {
      case CU_GRAPH_NODE_TYPE_KERNEL: {
        CUDA_KERNEL_NODE_PARAMS_v2 p{};
        if (!g.kernel_params || g.kernel_params(node, &p) != CUDA_SUCCESS) {
          out.complete = false;
          break;
        }
        out.launches.push_back(node_launch(p.func, p.kern, p.kernelParams, p.extra));
        break;
      }
      case CU_GRAPH_NODE_TYPE_MEMCPY: {
        CUDA_MEMCPY3D p{};
        if (!g.memcpy_params || g.memcpy_params(node, &p) != CUDA_SUCCESS) {
          out.complete = false;
          break;
        }
        add_copy_node(p, out);
        break;
      }
      case CU_GRAPH_NODE_TYPE_MEMSET: {
        CUDA_MEMSET_NODE_PARAMS p{};
        if (!g.memset_params || g.memset_params(node, &p) != CUDA_SUCCESS) {
          out.complete = false;
          break;
        }
        add_memset_node(p, out);
        break;
      }
      case CU_GRAPH_NODE_TYPE_GRAPH: {
        CUgraph child = nullptr;
        if (!g.child_graph || g.child_graph(node, &child) != CUDA_SUCCESS || child == nullptr) {
          out.complete = false;
          break;
        }
        list(child, out, depth + 1);
        break;
      }
      // Touch no memory the program allocated with cuMemAlloc.
      case CU_GRAPH_NODE_TYPE_EMPTY:
      case CU_GRAPH_NODE_TYPE_HOST:
      case CU_GRAPH_NODE_TYPE_WAIT_EVENT:
      case CU_GRAPH_NODE_TYPE_EVENT_RECORD:
      case CU_GRAPH_NODE_TYPE_EXT_SEMAS_SIGNAL:
      case CU_GRAPH_NODE_TYPE_EXT_SEMAS_WAIT:
      case CU_GRAPH_NODE_TYPE_MEM_ALLOC:
      case CU_GRAPH_NODE_TYPE_MEM_FREE:
        break;
      // Batch memory operations, conditional bodies, kinds newer than this
      // build: not read, so they may touch anything.
      default:
        out.complete = false;
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
    list(graph, out, 0);
  } catch (...) {
    out.complete = false;  // no memory to list it: assume it touches anything
  }
}

CUresult before_instantiate(CUgraph graph, const char* api, rt::GraphContents& contents) noexcept {
  if (graph == nullptr) return CUDA_SUCCESS;
  // Captured graphs too: where they read matters for memory tagged later.
  list_graph_contents(graph, contents);
  if (!rt::graph_contents_wanted(graph)) return CUDA_SUCCESS;
  const CUresult r = rt::on_graph_contents(graph, contents);
  if (r != CUDA_SUCCESS)
    log_line("{}: cannot stage what the graph's nodes read (error {}); the call fails", api, static_cast<int>(r));
  return r;
}

void after_instantiate(CUgraphExec exec, CUgraph graph, const rt::GraphContents& contents, bool update) noexcept {
  if (update) rt::on_graph_exec_update(exec, graph);
  else rt::on_graph_instantiate(exec, graph);
  rt::note_graph_reads(exec, contents, /*append=*/false);
}

}  // namespace nz::shim
