// Stream capture and CUDA graphs. A captured graph is the ordered list of work
// items issued to the capturing streams; instantiating copies it and launching
// replays it, in order, on the launch stream. Dependencies between captured
// streams collapse into that order (safe, but less concurrent than a GPU).
#include <algorithm>
#include <set>

#include "sim_graph_nodes.h"
#include "sim_stream.h"

namespace nzsim {
namespace {

// Never destroyed: stream workers may still run at process exit.
std::mutex& g_mu = *new std::mutex;
std::set<std::shared_ptr<Capture>>& g_active = *new std::set<std::shared_ptr<Capture>>;
thread_local CUstreamCaptureMode tl_mode = CU_STREAM_CAPTURE_MODE_GLOBAL;

}  // namespace

void join_capture(Stream* s, const std::shared_ptr<Capture>& cap) {
  {
    std::lock_guard lock(s->mu);
    if (s->capture == cap) return;
    s->capture = cap;
  }
  {
    std::lock_guard lock(cap->mu);
    cap->members.push_back(s);
  }
  std::lock_guard lock(g_mu);
  g_active.insert(cap);
}

CUresult check_capture_unsafe_call() {
  if (tl_mode == CU_STREAM_CAPTURE_MODE_RELAXED) return CUDA_SUCCESS;
  std::lock_guard lock(g_mu);
  if (g_active.empty()) return CUDA_SUCCESS;
  bool hit = false;
  for (auto& cap : g_active) {
    bool affected = cap->mode == CU_STREAM_CAPTURE_MODE_GLOBAL ||
                    (cap->mode == CU_STREAM_CAPTURE_MODE_THREAD_LOCAL && cap->thread == std::this_thread::get_id());
    if (affected) {
      cap->invalidated = true;
      hit = true;
    }
  }
  return hit ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}

}  // namespace nzsim

using namespace nzsim;

extern "C" {

CUresult CUDAAPI cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode* mode) {
  NZ_REQUIRE_INIT();
  if (!mode) return CUDA_ERROR_INVALID_VALUE;
  std::swap(*mode, tl_mode);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamEndCapture(CUstream h, CUgraph* graph) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (!graph) return CUDA_ERROR_INVALID_VALUE;
  std::shared_ptr<Capture> cap;
  {
    std::lock_guard lock(s->mu);
    cap = s->capture;
  }
  if (!cap) return CUDA_ERROR_ILLEGAL_STATE;
  if (cap->origin != s) return CUDA_ERROR_STREAM_CAPTURE_UNMATCHED;
  {
    std::lock_guard lock(cap->mu);
    for (Stream* m : cap->members) {
      std::lock_guard slock(m->mu);
      if (m->capture == cap) m->capture.reset();
    }
  }
  {
    std::lock_guard lock(g_mu);
    g_active.erase(cap);
  }
  *graph = nullptr;
  if (cap->invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
  auto* g = new Graph;
  {
    std::lock_guard lock(cap->graph->mu);
    g->items = std::move(cap->graph->items);
  }
  *graph = reinterpret_cast<CUgraph>(g);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphCreate(CUgraph* graph, unsigned int flags) {
  NZ_REQUIRE_INIT();
  if (!graph || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  *graph = reinterpret_cast<CUgraph>(new Graph);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphDestroy(CUgraph graph) {
  NZ_REQUIRE_INIT();
  if (!graph) return CUDA_ERROR_INVALID_VALUE;
  delete reinterpret_cast<Graph*>(graph);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphGetNodes(CUgraph graph, CUgraphNode* nodes, size_t* count) {
  NZ_REQUIRE_INIT();
  if (!graph || !count) return CUDA_ERROR_INVALID_VALUE;
  auto* g = reinterpret_cast<Graph*>(graph);
  std::lock_guard lock(g->mu);
  if (nodes) {
    for (size_t i = 0; i < std::min(*count, g->items.size()); ++i) nodes[i] = node_handle(g, i);
  }
  *count = g->items.size();
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphInstantiateWithFlags(CUgraphExec* exec, CUgraph graph, unsigned long long) {
  NZ_REQUIRE_INIT();
  if (!exec || !graph) return CUDA_ERROR_INVALID_VALUE;
  auto* g = reinterpret_cast<Graph*>(graph);
  auto* e = new GraphExec;
  e->source = g;
  {
    std::lock_guard lock(g->mu);
    e->items = g->items;
  }
  *exec = reinterpret_cast<CUgraphExec>(e);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphInstantiate_v2(CUgraphExec* exec, CUgraph graph, CUgraphNode* error_node, char* log,
                                       size_t log_size) {
  if (error_node) *error_node = nullptr;
  if (log && log_size) log[0] = '\0';
  return cuGraphInstantiateWithFlags(exec, graph, 0);
}

CUresult CUDAAPI cuGraphInstantiateWithParams(CUgraphExec* exec, CUgraph graph, CUDA_GRAPH_INSTANTIATE_PARAMS* params) {
  CUresult r = cuGraphInstantiateWithFlags(exec, graph, params ? params->flags : 0);
  if (params) {
    params->hErrNode_out = nullptr;
    params->result_out = r == CUDA_SUCCESS ? CUDA_GRAPH_INSTANTIATE_SUCCESS : CUDA_GRAPH_INSTANTIATE_ERROR;
  }
  return r;
}

// The exec takes the parameters of `graph`'s nodes where the topology is the
// same: as many nodes, each of the same kind as the exec's (the simulator's
// graphs are lists, so node i matches item i). The exec's node handles stay
// those of the graph it was instantiated from, as on a GPU.
CUresult CUDAAPI cuGraphExecUpdate_v2(CUgraphExec exec, CUgraph graph, CUgraphExecUpdateResultInfo* info) {
  NZ_REQUIRE_INIT();
  if (!exec || !graph || !info) return CUDA_ERROR_INVALID_VALUE;
  auto* e = reinterpret_cast<GraphExec*>(exec);
  auto* g = reinterpret_cast<Graph*>(graph);
  std::lock_guard lock(g->mu);
  *info = {};
  info->result = CU_GRAPH_EXEC_UPDATE_SUCCESS;
  if (g->items.size() != e->items.size()) {
    info->result = CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED;
    return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
  }
  for (size_t i = 0; i < g->items.size(); ++i) {
    if (g->items[i].kind != e->items[i].kind) {
      info->result = CU_GRAPH_EXEC_UPDATE_ERROR_NODE_TYPE_CHANGED;
      info->errorNode = node_handle(g, i);
      return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
    }
  }
  e->items = g->items;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphExecDestroy(CUgraphExec exec) {
  NZ_REQUIRE_INIT();
  if (!exec) return CUDA_ERROR_INVALID_VALUE;
  delete reinterpret_cast<GraphExec*>(exec);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGraphUpload(CUgraphExec exec, CUstream) {
  NZ_REQUIRE_INIT();
  return exec ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuGraphLaunch(CUgraphExec exec, CUstream h) {
  NZ_REQUIRE_INIT();
  if (!exec) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (CUresult r = s->ctx->sticky.load(); r != CUDA_SUCCESS) return r;
  for (const WorkItem& item : reinterpret_cast<GraphExec*>(exec)->items) submit(s, item);
  return CUDA_SUCCESS;
}

}  // extern "C"
