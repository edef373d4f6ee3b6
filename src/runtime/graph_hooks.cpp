// graph_hooks.cpp: CUDA graphs: captures pin what their launches touch,
// instantiations and replays hand their pins and uses to the units (the
// pin bookkeeping itself: graph_pins.cpp; node contents: graph_nodes.cpp).
#include "runtime/runtime.h"

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

namespace {

// A capturing stream passed as 0 can only be the per-thread default stream
// (the legacy stream cannot capture): name it as launches on it resolve it.
CUstream capture_key(CUstream stream) { return stream == nullptr ? CU_STREAM_PER_THREAD : stream; }

}  // namespace

namespace detail {
CUstream capture_record_key(CUstream s) noexcept {
  if (s != nullptr && s != CU_STREAM_PER_THREAD) return s;
  thread_local const char this_thread = 0;
  return reinterpret_cast<CUstream>(const_cast<char*>(&this_thread));
}
}  // namespace detail

void Runtime::note_unpinned(const GraphPins::Units& unpinned, const char* why) noexcept {
  // They stay staged: the LRU/pressure eviction takes them when it needs to.
  for (const auto& u : unpinned) emit("unpin", u->begin, u->bytes(), fmt::format("\"why\":\"{}\"", why));
}

void Runtime::on_capture_begin(CUstream stream) noexcept {
  std::lock_guard lock(mutex_);
  try {
    const CUstream resolved = capture_key(stream);  // the driver's name for it, to ask its sequence id
    graph_pins_.begin_capture(capture_record_key(stream), capture_sequence_id(resolved));
  } catch (...) {
    // Uses on this stream then pin for good (note_use finds no record).
  }
}

void Runtime::on_capture_end(CUstream stream, CUgraph graph) noexcept {
  std::lock_guard lock(mutex_);
  GraphPins::Units unpinned;
  try {
    graph_pins_.end_capture(capture_record_key(stream), graph, unpinned);
  } catch (...) {
  }
  note_unpinned(unpinned, "capture_failed");
}

void Runtime::on_graph_instantiate(CUgraphExec exec, CUgraph graph) noexcept {
  std::lock_guard lock(mutex_);
  settle_exec_replay(exec);  // an update (or a reused handle): the old pins drop below
  GraphPins::Units unpinned;
  try {
    graph_pins_.instantiate(exec, graph, unpinned);
  } catch (...) {
    // No record for the exec: the graph's own pins still hold its ranges
    // (until cuGraphDestroy, after which replays may find them evicted).
    log(LogLevel::kError, "no memory to record the ranges of graph exec {}", static_cast<const void*>(exec));
  }
  note_unpinned(unpinned, "exec_replaced");
}

void Runtime::on_graph_exec_destroy(CUgraphExec exec) noexcept {
  std::lock_guard lock(mutex_);
  settle_exec_replay(exec);
  GraphPins::Units unpinned;
  try {
    graph_pins_.destroy_exec(exec, unpinned);
  } catch (...) {
  }
  note_unpinned(unpinned, "exec_destroy");
}

void Runtime::on_graph_destroy(CUgraph graph) noexcept {
  std::lock_guard lock(mutex_);
  GraphPins::Units unpinned;
  try {
    graph_pins_.destroy_graph(graph, unpinned);
  } catch (...) {
  }
  note_unpinned(unpinned, "graph_destroy");
}

// The exec's ranges are pinned, so they are staged (or resident for good):
// one found compressed means the pin bookkeeping is wrong, and the replay
// would read unmapped memory. Report it loudly; do not refuse the launch.
CUresult Runtime::before_graph_launch(CUgraphExec exec, CUstream) noexcept {
  std::lock_guard lock(mutex_);
  graph_pins_.for_each_held(exec, [&](const std::shared_ptr<Unit>& u) {
    if (u->dead || u->state != UnitState::kCompressed) return;
    log(LogLevel::kError, "graph exec {} replays range {} ({} bytes) that is not staged", static_cast<const void*>(exec),
        hex(u->begin), u->bytes());
    emit("graph_unstaged", u->begin, u->bytes());
  });
  return CUDA_SUCCESS;
}

// A replay uses the exec's units like a launch: they are pinned while the
// exec lives, but its pins drop at once when it is destroyed or updated,
// maybe with this replay still queued; evictions wait for recorded uses.
// The replay's event is kept per exec and handed to its units only when the
// pins drop (settle_exec_replay): one event per replay on this path.
void Runtime::after_graph_launch(CUgraphExec exec, CUstream stream, bool per_thread) noexcept {
  if (tracked_.empty()) return;
  const CUstream resolved = resolve(stream, per_thread);
  if (stream_capturing(resolved)) return;  // a launch into a capture: replayed later, by its own graph
  std::lock_guard lock(mutex_);
  bool holds = false;
  graph_pins_.for_each_held(exec, [&](const std::shared_ptr<Unit>&) { holds = true; });
  if (!holds) return;
  SharedEvent done = record_event(resolved);
  if (!done) return;
  CUcontext current = nullptr;
  const bool own_legacy = (resolved == nullptr || resolved == CU_STREAM_LEGACY) &&
                          driver().base.cuCtxGetCurrent(&current) == CUDA_SUCCESS && current == context_;
  try {
    ReplayUse use{done, resolved, own_legacy};
    exec_replays_[exec] = std::move(use);
  } catch (...) {
    // No memory for the record: the use goes to the units at once.
    graph_pins_.for_each_held(exec, [&](const std::shared_ptr<Unit>& u) { u->add_use(done, resolved, own_legacy); });
  }
}

void Runtime::settle_exec_replay(CUgraphExec exec) noexcept {
  auto it = exec_replays_.find(exec);
  if (it == exec_replays_.end()) return;
  const ReplayUse& r = it->second;
  graph_pins_.for_each_held(exec, [&](const std::shared_ptr<Unit>& u) { u->add_use(r.done, r.stream, r.own_legacy); });
  exec_replays_.erase(it);
}

}  // namespace nz::rt
