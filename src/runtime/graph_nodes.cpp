// graph_nodes.cpp: graphs no stream capture we saw produced — built node by
// node (cuGraphAddKernelNode, cuGraphAddMemcpyNode, ... as XLA's command
// buffers and cuDNN's graph population do), cloned, or nested as child
// graphs. Their kernels never pass through a launch hook, so before such a
// graph is instantiated the shim lists its nodes (hooks.h GraphContents) and
// the runtime stages what they touch and pins it, exactly as a capture pins
// what its launches touch: the pins pass to every exec made from the graph
// (graph_pins.h). Until 2026-12-06 such a graph's kernels read compressed
// memory unmapped: an illegal address on a GPU.
//
// Every graph's listing, captured ones included, also says where it reads
// (note_graph_reads): memory tagged there only later is pinned for the graph
// and its execs as it is tagged.
#include <algorithm>
#include <map>

#include "runtime/launch_scan.h"
#include "runtime/log.h"
#include "runtime/runtime.h"

namespace nz::rt {

// Every graph, captured ones too (on_graph_contents): a captured graph's
// launches were pinned as they were captured, but nodes added to it
// afterwards (cuGraphAddKernelNode into a captured graph) and units made
// since were not. For those the listing costs a walk over units already
// staged and pinned.
CUresult Runtime::pin_graph_contents(const GraphContents& c, CUgraph graph, CUgraphExec exec, CUgraphNode node,
                                     const char* what) noexcept {
  std::vector<std::shared_ptr<Unit>> touched;
  try {
    touched = units_touched_by(c);
  } catch (...) {
    return CUDA_ERROR_OUT_OF_MEMORY;  // the caller's call fails: better than a replay on unmapped memory
  }
  // (An exec node's setter goes on with nothing to pin: its old pins go.)
  if (touched.empty() && exec == nullptr) return CUDA_SUCCESS;
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
    if (r != CUDA_SUCCESS) {
      graph_pins_.end_capture(key, nullptr, unpinned);
    } else if (exec != nullptr) {
      // The node's old ranges may still be read by a replay queued before
      // this call: they get its use before their pins go.
      if (auto it = exec_replays_.find(exec); it != exec_replays_.end()) {
        const ReplayUse& use = it->second;
        graph_pins_.for_each_held(exec, [&](const std::shared_ptr<Unit>& u) {
          u->add_use(use.done, use.stream, use.own_legacy);
        });
      }
      graph_pins_.end_capture_into_exec_node(key, exec, node, unpinned);
    } else {
      graph_pins_.end_capture(key, graph, unpinned);
    }
  } catch (...) {
  }
  note_unpinned(unpinned, "graph_scan_failed");
  return r;
}

CUresult Runtime::on_graph_contents(CUgraph graph, const GraphContents& c) noexcept {
  return pin_graph_contents(c, graph, nullptr, nullptr, "cuGraphInstantiate");
}

CUresult Runtime::on_exec_node_params(CUgraphExec exec, CUgraphNode node, const GraphContents& c) noexcept {
  // Even with nothing tracked (an empty record): the node's old pins go.
  return pin_graph_contents(c, nullptr, exec, node, "cuGraphExec*NodeSetParams");
}

// Where a graph's (or, for an exec's node setter, the exec's) nodes may read
// or write, kept so that a unit made there later (a static input buffer first
// filled from the host after the capture, an adapter loaded into a buffer a
// graph reads) is pinned for it as it is made (GraphPins::adopt). Called
// before the nodes are staged, so that no unit is made unseen in between.
// Generous on purpose: a pointer anchors its whole allocation (a kernel may
// read before its pointer: the tag before it, one-past-the-end pointers), the
// allocations a pointer array it passes points into too; a copy or memset
// its bytes; a listing that could not read a node, or a kernel whose
// parameters cannot be read, all memory.
void Runtime::note_graph_reads(CUgraph graph, CUgraphExec exec, const GraphContents& c) noexcept {
  constexpr GraphPins::Anchor kEverything{0, ~CUdeviceptr{0}};
  try {
    std::vector<CUdeviceptr> words;
    std::vector<GraphPins::Anchor> anchors;
    bool anything = !c.complete;
    const auto arrays = pointer_arrays_.empty() ? nullptr : pointer_arrays_.snapshot();
    for (const auto& d : c.launches) {
      if (anything) break;
      const bool scanned = for_each_param_word(
          d, params_,
          [&](uint64_t word) {
            words.push_back(word);
            if (arrays) {
              if (const auto* a = RangeMap<std::vector<CUdeviceptr>>::find(*arrays, word))
                words.insert(words.end(), a->value->begin(), a->value->end());
            }
          },
          [&](const unsigned char* bytes, size_t size, std::vector<size_t>&) {
            for (size_t off = 0; off + TensorMapRegistry::kBytes <= size; off += TensorMapRegistry::kAlign)
              if (auto target = tensor_maps_.find(bytes + off)) words.push_back(target->address);
          });
      anything = !scanned;
    }
    if (anything) {
      anchors.push_back(kEverything);
    } else {
      for (const auto& span : c.spans)
        if (span.bytes > 0) anchors.push_back({span.ptr, span.ptr + span.bytes});
    }
    std::lock_guard lock(mutex_);
    if (!setup_ok_) return;
    if (!anything) {
      for (CUdeviceptr w : words) {
        Allocation* a = allocation_containing(w);
        if (a == nullptr && w > 0) a = allocation_containing(w - 1);  // one past the end
        if (a != nullptr) anchors.push_back({a->base, a->base + a->bytes});
      }
    }
    if (exec != nullptr) graph_pins_.add_exec_anchors(exec, std::move(anchors));
    else if (graph != nullptr) graph_pins_.set_graph_anchors(graph, std::move(anchors));
  } catch (...) {
    // No memory for the list: the holder reads "everything" (the safe side).
    std::lock_guard lock(mutex_);
    try {
      if (exec != nullptr) graph_pins_.add_exec_anchors(exec, {kEverything});
      else if (graph != nullptr) graph_pins_.set_graph_anchors(graph, {kEverything});
    } catch (...) {
      log(LogLevel::kError, "no memory to record where a graph reads: memory tagged after it is not pinned");
    }
  }
}

}  // namespace nz::rt
