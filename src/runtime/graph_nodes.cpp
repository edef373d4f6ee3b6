// graph_nodes.cpp: graphs no stream capture we saw produced — built node by
// node (cuGraphAddKernelNode, cuGraphAddMemcpyNode, ... as XLA's command
// buffers and cuDNN's graph population do), cloned, or nested as child
// graphs. Their kernels never pass through a launch hook, so before such a
// graph is instantiated the shim lists its nodes (hooks.h GraphContents) and
// the runtime stages what they touch and pins it, exactly as a capture pins
// what its launches touch: the pins pass to every exec made from the graph
// (graph_pins.h). Until 2026-12-06 such a graph's kernels read compressed
// memory unmapped: an illegal address on a GPU.
#include "runtime/runtime.h"

namespace nz::rt {

bool Runtime::graph_contents_wanted(CUgraph graph) noexcept {
  if (tracked_.empty()) return false;  // nothing tagged: nothing to pin
  std::lock_guard lock(mutex_);
  return setup_ok_ && !graph_pins_.captured(graph);
}

CUresult Runtime::pin_graph_contents(const GraphContents& c, CUgraph graph, CUgraphExec exec,
                                     const char* what) noexcept {
  std::vector<std::shared_ptr<Unit>> touched;
  try {
    touched = units_touched_by(c);
  } catch (...) {
    return CUDA_ERROR_OUT_OF_MEMORY;  // the caller's call fails: better than a replay on unmapped memory
  }
  if (touched.empty()) return CUDA_SUCCESS;
  // A record of our own, as a capture's, that prepare pins every unit
  // under. Its key is no stream handle: the address of a local.
  const int key_object = 0;
  const auto key = reinterpret_cast<CUstream>(const_cast<int*>(&key_object));
  {
    std::lock_guard lock(mutex_);
    if (!setup_ok_) return CUDA_SUCCESS;
    try {
      graph_pins_.begin_capture(key);
    } catch (...) {
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
  }
  // Staged on the internal stream with the host waiting for the decodes, as
  // for a capture: the graph may be launched on any stream, at any time.
  const CUresult r = prepare(touched, internal_.get(), /*capturing=*/true, what, key);
  if (r == CUDA_SUCCESS) release_held(touched, internal_.get(), /*capturing=*/true);
  std::lock_guard lock(mutex_);
  GraphPins::Units unpinned;
  try {
    if (r != CUDA_SUCCESS) graph_pins_.end_capture(key, nullptr, unpinned, false);
    else if (exec != nullptr) graph_pins_.end_capture_into_exec(key, exec, unpinned);
    else graph_pins_.end_capture(key, graph, unpinned, false);
  } catch (...) {
  }
  note_unpinned(unpinned, "graph_scan_failed");
  return r;
}

CUresult Runtime::on_graph_contents(CUgraph graph, const GraphContents& c) noexcept {
  return pin_graph_contents(c, graph, nullptr, "cuGraphInstantiate");
}

CUresult Runtime::on_exec_node_params(CUgraphExec exec, const GraphContents& c) noexcept {
  if (tracked_.empty()) return CUDA_SUCCESS;
  return pin_graph_contents(c, nullptr, exec, "cuGraphExecKernelNodeSetParams");
}

}  // namespace nz::rt
