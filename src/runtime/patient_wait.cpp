// patient_wait.cpp: host waits for queued uses of staged ranges, bounded.
//
// An eviction must wait until the work that reads a range completed before
// it unmaps the range. But a stream can be blocked on work the program
// launches only after the current call returns: cuStreamWaitValue on a flag
// a later kernel or another stream sets, a kernel or host function spinning
// on one, a collective waiting for a peer that waits for this rank's later
// work. The launching thread that waited for such a stream would wait for
// ever, and so would one waiting for the look-ahead stager that waits for it.
//
// So every such wait lasts at most NEUZIP_WAIT_PATIENCE_MS. Past it the
// units are marked stalled (run_evictable passes them over until their uses
// completed), and so is every unit with an unfinished use on a stream found
// blocked (behind_stall); the caller evicts another run or stages over the
// budget. Events are polled (cuEventSynchronize cannot time out), with
// sleeps between the queries.
#include <chrono>
#include <thread>

#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

bool Runtime::await_events(const std::vector<SharedEvent>& events, TraceClock::time_point start) const noexcept {
  const auto deadline = start + std::chrono::milliseconds(config_.wait_patience_ms);
  // Sleeps from 10 µs, doubling up to 200 µs: a wait ends at most ~200 µs
  // after its event. (Yielding in a loop for the first 100 µs instead cost
  // the launching thread a third more CPU time in hooks on the simulator,
  // whose device shares the cores: RESULTS §4.9.30.)
  auto pause = std::chrono::microseconds(10);
  for (const SharedEvent& e : events) {
    while (!event_done(e)) {
      if (TraceClock::now() >= deadline) return false;
      std::this_thread::sleep_for(pause);
      pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::microseconds(200));
    }
  }
  return true;
}

bool Runtime::behind_stall(const Unit& u) const noexcept {
  for (const auto& [stream, event] : stalled_streams_) {
    if (event_done(event)) continue;
    for (size_t i = 0; i < u.uses.size() && i < u.use_streams.size(); ++i)
      if (u.use_streams[i] == stream && !event_done(u.uses[i])) return true;
  }
  return false;
}

void Runtime::mark_stalled_locked(const std::vector<Unit*>& units) noexcept {
  std::erase_if(stalled_streams_, [](const auto& s) { return event_done(s.second); });
  CUdeviceptr begin = 0;
  size_t bytes = 0;
  for (Unit* v : units) {
    v->stalled = !v->uses_done();
    if (!v->stalled) continue;
    if (begin == 0) begin = v->begin;
    bytes += v->bytes();
    for (size_t i = 0; i < v->uses.size() && i < v->use_streams.size(); ++i) {
      if (v->use_streams[i] == nullptr || event_done(v->uses[i])) continue;
      try {
        stalled_streams_.emplace_back(v->use_streams[i], v->uses[i]);
      } catch (...) {
      }
    }
  }
  stats_.stalled_waits.add();
  emit("stalled", begin, bytes);
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    log(LogLevel::kError, "a staged range's queued uses did not complete within {} ms (a stream waiting for work "
        "not launched yet?): staging over the budget instead of waiting (NEUZIP_WAIT_PATIENCE_MS)",
        config_.wait_patience_ms);
}

bool Runtime::wait_run_uses(Unit& u) noexcept {
  const auto start = TraceClock::now();
  std::vector<Unit*> members;
  std::vector<SharedEvent> pending;
  try {
    if (!u.run) {
      members.push_back(&u);
    } else {
      for (const auto& w : u.run->units)
        if (auto v = w.lock()) members.push_back(v.get());  // the run holds them
    }
    for (Unit* v : members)
      for (const auto& e : v->uses)
        if (!event_done(e)) pending.push_back(e);
  } catch (...) {
    return false;  // no memory to list them: not evicted
  }
  const bool done = await_events(pending, start);
  if (done) {
    for (Unit* v : members) v->clear_uses();
  } else {
    mark_stalled_locked(members);
  }
  // Hook threads only: what the device made a launch wait for (see nz_runtime_stats).
  if (!on_stager_thread())
    stats_.hook_wait_ns.add(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(TraceClock::now() - start).count()));
  return done;
}

}  // namespace nz::rt
