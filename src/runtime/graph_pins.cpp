// graph_pins.cpp: pin ownership of captures, graphs and executable graphs.
#include "runtime/graph_pins.h"

#include <algorithm>

namespace nz::rt {

void GraphPins::pin_all(const Units& units) {
  for (const auto& u : units) ++u->pins;
}

void GraphPins::unpin_all(Units& units, Units& unpinned) {
  for (auto& u : units) {
    if (u->pins > 0 && --u->pins == 0) unpinned.push_back(u);
  }
  units.clear();
}

void GraphPins::begin_capture(CUstream stream, uint64_t id) {
  // An older record for this stream belongs to a capture whose end was not
  // reported: its pins stay (permanent), only the bookkeeping is replaced.
  captures_[stream].clear();
  std::erase_if(capture_ids_, [&](const auto& e) { return e.second == stream; });
  if (id != 0) capture_ids_[id] = stream;
}

bool GraphPins::note_use(CUstream stream, const std::shared_ptr<Unit>& u, uint64_t id) {
  auto it = captures_.find(stream);
  if (it == captures_.end() && id != 0) {
    // Forked into a capture begun on another stream: that capture's record.
    if (auto owner = capture_ids_.find(id); owner != capture_ids_.end()) it = captures_.find(owner->second);
  }
  if (it == captures_.end()) {
    ++u->pins;  // no owner to release it: permanent, as safe as it gets
    try {
      permanent_.push_back(u);  // (for adopt: a remade unit stays pinned too)
    } catch (...) {
    }
    return false;
  }
  Units& units = it->second;
  if (std::find(units.begin(), units.end(), u) != units.end()) return true;
  units.push_back(u);
  ++u->pins;
  return true;
}

GraphPins::Units GraphPins::take_capture(CUstream stream, bool& found) {
  auto it = captures_.find(stream);
  found = it != captures_.end();
  if (!found) return {};
  Units units = std::move(it->second);
  captures_.erase(it);
  std::erase_if(capture_ids_, [&](const auto& e) { return e.second == stream; });
  return units;
}

void GraphPins::merge(Units units, Units& held, Units& unpinned) {
  for (auto& u : units) {
    if (std::find(held.begin(), held.end(), u) != held.end()) {
      if (u->pins > 0 && --u->pins == 0) unpinned.push_back(u);  // the holder already has one
    } else {
      held.push_back(std::move(u));
    }
  }
}

void GraphPins::end_capture(CUstream stream, CUgraph graph, Units& unpinned) {
  bool found = false;
  Units units = take_capture(stream, found);
  if (!found) return;
  if (graph == nullptr) {
    unpin_all(units, unpinned);
    return;
  }
  merge(std::move(units), graphs_[graph], unpinned);
}

void GraphPins::end_capture_into_exec_node(CUstream stream, CUgraphExec exec, CUgraphNode node, Units& unpinned) {
  bool found = false;
  Units units = take_capture(stream, found);
  if (!found) return;
  Units& held = node_pins_[{exec, node}];
  Units old = std::move(held);
  held = std::move(units);  // pinned once each by the record already
  unpin_all(old, unpinned);  // after the new pins: a range in both stays pinned throughout
}

void GraphPins::instantiate(CUgraphExec exec, CUgraph graph, Units& unpinned) {
  destroy_exec(exec, unpinned);  // a reused handle: the old exec is gone
  if (auto a = graph_anchors_.find(graph); a != graph_anchors_.end()) exec_anchors_[exec] = a->second;
  auto it = graphs_.find(graph);
  if (it == graphs_.end() || it->second.empty()) return;
  pin_all(it->second);
  execs_[exec] = it->second;
}

void GraphPins::destroy_exec(CUgraphExec exec, Units& unpinned) {
  exec_anchors_.erase(exec);
  for (auto it = node_pins_.lower_bound({exec, nullptr}); it != node_pins_.end() && it->first.first == exec;) {
    unpin_all(it->second, unpinned);
    it = node_pins_.erase(it);
  }
  auto it = execs_.find(exec);
  if (it == execs_.end()) return;
  unpin_all(it->second, unpinned);
  execs_.erase(it);
}

void GraphPins::destroy_graph(CUgraph graph, Units& unpinned) {
  graph_anchors_.erase(graph);  // the handle may be reused
  auto it = graphs_.find(graph);
  if (it == graphs_.end()) return;
  unpin_all(it->second, unpinned);
  graphs_.erase(it);
}

void GraphPins::adopt(const std::shared_ptr<Unit>& u) {
  auto overlaps = [&](const std::shared_ptr<Unit>& v) { return v != u && v->begin < u->end && u->begin < v->end; };
  auto adopt_into = [&](Units& held) {
    if (std::none_of(held.begin(), held.end(), overlaps)) return;
    if (std::find(held.begin(), held.end(), u) != held.end()) return;
    held.push_back(u);
    ++u->pins;
  };
  for (auto& [stream, held] : captures_) adopt_into(held);
  for (auto& [graph, held] : graphs_) adopt_into(held);
  for (auto& [exec, held] : execs_) adopt_into(held);
  for (auto& [exec_node, held] : node_pins_) adopt_into(held);
  adopt_into(permanent_);
  // Memory a graph's or an exec's nodes reach, tagged only now.
  auto reached = [&](const std::vector<Anchor>& anchors) {
    // Sorted and merged: the last anchor starting before u's end decides.
    auto it = std::partition_point(anchors.begin(), anchors.end(), [&](const Anchor& a) { return a.begin < u->end; });
    return it != anchors.begin() && std::prev(it)->end > u->begin;
  };
  auto pin_for = [&](Units& held) {
    if (std::find(held.begin(), held.end(), u) != held.end()) return;
    held.push_back(u);
    ++u->pins;
  };
  for (const auto& [graph, anchors] : graph_anchors_)
    if (reached(anchors)) pin_for(graphs_[graph]);
  for (const auto& [exec, anchors] : exec_anchors_)
    if (reached(anchors)) pin_for(execs_[exec]);
}

void GraphPins::merge_anchors(std::vector<Anchor>& anchors) {
  std::sort(anchors.begin(), anchors.end(), [](const Anchor& x, const Anchor& y) { return x.begin < y.begin; });
  size_t out = 0;
  for (const Anchor& a : anchors) {
    if (a.end <= a.begin) continue;
    if (out > 0 && a.begin <= anchors[out - 1].end) {
      anchors[out - 1].end = std::max(anchors[out - 1].end, a.end);
    } else {
      anchors[out++] = a;
    }
  }
  anchors.resize(out);
}

void GraphPins::set_graph_anchors(CUgraph graph, std::vector<Anchor> anchors) {
  merge_anchors(anchors);
  if (anchors.empty()) graph_anchors_.erase(graph);
  else graph_anchors_[graph] = std::move(anchors);
}

void GraphPins::add_exec_anchors(CUgraphExec exec, std::vector<Anchor> anchors) {
  auto& held = exec_anchors_[exec];
  held.insert(held.end(), anchors.begin(), anchors.end());
  merge_anchors(held);
  if (held.empty()) exec_anchors_.erase(exec);
}

const GraphPins::Units* GraphPins::units_of(CUgraphExec exec) const {
  auto it = execs_.find(exec);
  return it == execs_.end() ? nullptr : &it->second;
}

}  // namespace nz::rt
