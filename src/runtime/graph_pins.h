// graph_pins.h: which staged units captured CUDA graphs depend on, so that
// they stay mapped exactly as long as a graph or an executable graph that
// may replay them exists (replays never pass through our launch hooks).
//
// Each holder (an open capture, a CUgraph, a CUgraphExec) owns one pin on
// every unit it uses: Unit::pins counts holders, and a unit whose count is
// back to 0 is an ordinary staged unit again (evicted by LRU/pressure, not
// at once). Not thread-safe: the runtime calls it under its mutex.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "runtime/unit.h"

namespace nz::rt {

class GraphPins {
 public:
  using Units = std::vector<std::shared_ptr<Unit>>;

  // A capture began on `stream`: later uses on it are recorded for its graph.
  // A record left open by a capture whose end we never saw keeps its pins.
  // `id`: the driver's capture sequence id (0: unknown), shared by every
  // stream that joins the capture (an event recorded in it, then waited for).
  void begin_capture(CUstream stream, uint64_t id = 0);
  // Whether a capture begun on `stream` is recorded.
  bool recording(CUstream stream) const { return captures_.count(stream) != 0; }
  // A launch or copy on capturing `stream` uses `u`: pins it once per
  // holder. A stream forked into another stream's capture has no record of
  // its own: its use goes to the record of the capture with its sequence id
  // `id`. Returns false when there is none (the id unknown, or a capture
  // begun unseen): then the pin is permanent.
  bool note_use(CUstream stream, const std::shared_ptr<Unit>& u, uint64_t id = 0);
  // The capture on `stream` ended: its pins pass to `graph`, or are released
  // when it produced none (failed or invalidated capture). Capturing into an
  // existing graph adds to what that graph already holds. (Also the end of a
  // record the runtime opened itself to stage a graph's nodes, graph_nodes.cpp.)
  void end_capture(CUstream stream, CUgraph graph, Units& unpinned);
  // Such a record's pins pass to `node` of `exec` (a node given new
  // parameters in an executable graph), replacing what that node's last
  // setter call pinned: re-pointing a node does not keep every range it ever
  // pointed at staged.
  void end_capture_into_exec_node(CUstream stream, CUgraphExec exec, CUgraphNode node, Units& unpinned);
  // Calls f(unit) for every unit `exec` holds (its graph's and its node setters').
  template <typename F>
  void for_each_held(CUgraphExec exec, F&& f) const {
    if (auto it = execs_.find(exec); it != execs_.end())
      for (const auto& u : it->second) f(u);
    for (auto it = node_pins_.lower_bound({exec, nullptr}); it != node_pins_.end() && it->first.first == exec; ++it)
      for (const auto& u : it->second) f(u);
  }

  // `exec` was instantiated from `graph`: it takes its own pin on every unit
  // the graph holds (an exec outlives its graph). Graphs not built by a
  // capture we saw hold nothing.
  void instantiate(CUgraphExec exec, CUgraph graph, Units& unpinned);
  void destroy_exec(CUgraphExec exec, Units& unpinned);
  void destroy_graph(CUgraph graph, Units& unpinned);
  // `u` was just made for memory that units held before (a unit retired and
  // made again by a later tag, or split differently): every holder of an
  // overlapping unit, dead or alive, pins `u` too, so that the memory a
  // graph's kernels read stays mapped while the graph may replay. (Pins
  // belong to unit objects: without this the new unit was compressed under
  // a live graph, whose replay then read unmapped or undecoded pages.)
  void adopt(const std::shared_ptr<Unit>& u);
  // Where a graph's (or an exec's) kernels, copies and memsets may read or
  // write, from its nodes (graph_nodes.cpp): a unit made later over one of
  // these ranges is pinned for that holder as it is made (adopt). Without them
  // a buffer first filled from the host after the capture (a static input)
  // was compressed under the exec and its replay read unmapped memory. Set on
  // the graph before its nodes are staged (no unit can be made unseen in
  // between), copied to each exec made from it; an exec's node setters add
  // theirs. Kept sorted and merged.
  struct Anchor {
    CUdeviceptr begin, end;
  };
  void set_graph_anchors(CUgraph graph, std::vector<Anchor> anchors);
  void add_exec_anchors(CUgraphExec exec, std::vector<Anchor> anchors);
  // What `exec` holds (empty for execs we know nothing about).
  const Units* units_of(CUgraphExec exec) const;

  size_t open_captures() const { return captures_.size(); }
  size_t graphs() const { return graphs_.size(); }
  size_t execs() const { return execs_.size(); }

 private:
  static void pin_all(const Units& units);
  // Drops one pin from each; appends those now unpinned to `unpinned`.
  static void unpin_all(Units& units, Units& unpinned);
  static void merge_anchors(std::vector<Anchor>& anchors);
  // Moves a record's units into `held`, one pin per holder.
  static void merge(Units units, Units& held, Units& unpinned);
  Units take_capture(CUstream stream, bool& found);

  std::map<CUstream, Units> captures_;
  std::map<uint64_t, CUstream> capture_ids_;  // sequence id -> the stream whose record it is
  std::map<CUgraph, Units> graphs_;
  std::map<CUgraphExec, Units> execs_;
  std::map<std::pair<CUgraphExec, CUgraphNode>, Units> node_pins_;  // exec node setters' pins
  std::map<CUgraph, std::vector<Anchor>> graph_anchors_;
  std::map<CUgraphExec, std::vector<Anchor>> exec_anchors_;
  Units permanent_;  // pinned by uses on streams captured into a capture we did not see begin
};

}  // namespace nz::rt
