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
// Every graph's listing, captured ones included, also says where its exec
// reads (note_graph_reads): memory tagged there only later is pinned for the
// exec as it is tagged.
#include <algorithm>
#include <map>

#include "runtime/launch_scan.h"
#include "runtime/log.h"
#include "runtime/runtime.h"

namespace nz::rt {

// Every graph, captured ones too: a captured graph's launches were pinned as
// they were captured, but nodes added to it afterwards (cuGraphAddKernelNode
// into a captured graph) and units made since were not. For those the
// listing costs a walk over units already staged and pinned.
bool Runtime::graph_contents_wanted(CUgraph) noexcept {
  return !tracked_.empty();  // nothing tagged: nothing to pin
}

CUresult Runtime::pin_graph_contents(const GraphContents& c, CUgraph graph, CUgraphExec exec,
                                     const char* what) noexcept {
  // A node a captured graph's listing cannot read was seen by our hooks as
  // it was captured: only a graph built node by node must assume it touches
  // everything.
  bool trust_listing = false;
  if (graph != nullptr) {
    std::lock_guard lock(mutex_);
    trust_listing = graph_pins_.captured(graph);
  }
  std::vector<std::shared_ptr<Unit>> touched;
  try {
    touched = units_touched_by(c, trust_listing);
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

// Where the exec's nodes may read or write, kept so that a unit made there
// later (a static input buffer first filled from the host after the capture)
// is pinned for the exec as it is made (GraphPins::adopt). A pointer reaches
// forward to its allocation's end, as at a launch; a copy or memset its bytes.
void Runtime::note_graph_reads(CUgraphExec exec, const GraphContents& c, bool append) noexcept {
  try {
    std::vector<CUdeviceptr> words;  // from pointers: reach to the allocation's end
    std::vector<GraphPins::Anchor> exact;
    bool anything = false;
    for (const auto& d : c.launches) {
      const bool scanned = for_each_param_word(
          d, params_, [&](uint64_t word) { words.push_back(word); },
          [&](const unsigned char* bytes, size_t size, std::vector<size_t>& accounted) {
            for (size_t off = 0; off + TensorMapRegistry::kBytes <= size; off += TensorMapRegistry::kAlign) {
              auto target = tensor_maps_.find(bytes + off);
              if (!target) continue;
              if (target->extent == 0) {
                words.push_back(target->address);
              } else {
                exact.push_back({target->address, target->address + target->extent});
                accounted.push_back(off);
              }
            }
          });
      anything = anything || !scanned;
    }
    for (const auto& span : c.spans) exact.push_back({span.ptr, span.ptr + span.bytes});
    std::lock_guard lock(mutex_);
    if (!setup_ok_) return;
    std::vector<GraphPins::Anchor> anchors;
    if (anything) {
      // A kernel whose parameters cannot be read may touch any allocation.
      for (const auto& [base, a] : allocations_) anchors.push_back({a->base, a->base + a->bytes});
    } else {
      // One anchor per allocation for the pointers (the lowest reaches furthest).
      std::map<CUdeviceptr, CUdeviceptr> lowest;  // allocation base -> lowest word in it
      for (CUdeviceptr w : words) {
        Allocation* a = allocation_containing(w);
        if (a == nullptr) continue;
        auto [it, inserted] = lowest.emplace(a->base, w);
        if (!inserted) it->second = std::min(it->second, w);
      }
      for (const auto& [base, w] : lowest) anchors.push_back({w, allocations_.at(base)->base + allocations_.at(base)->bytes});
      for (const auto& e : exact)
        if (e.end > e.begin && (allocation_containing(e.begin) != nullptr || allocation_containing(e.end - 1) != nullptr))
          anchors.push_back(e);
    }
    graph_pins_.set_anchors(exec, std::move(anchors), append);
  } catch (...) {
    log(LogLevel::kError, "no memory to record where graph exec {} reads: buffers tagged after it are not pinned",
        static_cast<const void*>(exec));
  }
}

}  // namespace nz::rt
