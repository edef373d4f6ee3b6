// patient_wait.cpp: host waits for queued uses of staged ranges, bounded, and
// the streams known to wait for later work.
//
// An eviction must wait until the work that reads a range completed before
// it unmaps the range (or, for a handover, make the device wait for it before
// the pages are used again). But a stream can be blocked on work the program
// launches only after the current call returns: cuStreamWaitValue on a flag a
// later kernel or another stream sets, a kernel or host function spinning on
// one, a collective waiting for a peer that waits for this rank's later work.
// The launching thread that waited for such a stream would wait for ever,
// and so would one waiting for the look-ahead stager that waits for it; a
// decode made to wait for it on the device (a handover's fence) would
// deadlock the device.
//
// Two defences, both through blocked_streams_ (a stream, and an event after
// which it may be free again):
//  * a stream memory wait the program queued (cuStreamWaitValue32/64, a
//    batch's waits) marks its stream until the wait passed
//    (note_stream_wait): the uses on it are neither waited for nor handed
//    over meanwhile;
//  * every other host wait lasts at most NEUZIP_WAIT_PATIENCE_MS; past it,
//    the streams of the uses still unfinished are marked until those uses
//    complete (mark_stalled_locked).
// A unit with an unfinished use on a marked stream is passed over
// (run_evictable, hand-over eligibility); the caller evicts another run or
// stages over the budget. The marks end by themselves when their events
// complete. Events are polled (cuEventSynchronize cannot time out), with
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
      // The stager's waits end with it (stop_stager allows it 2 s).
      if (TraceClock::now() >= deadline || (on_stager_thread() && stop_stager_.load())) return false;
      std::this_thread::sleep_for(pause);
      pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::microseconds(200));
    }
  }
  return true;
}

bool Runtime::behind_stall(const Unit& u) const noexcept {
  for (const auto& [stream, event] : blocked_streams_) {
    if (event_done(event)) continue;
    for (size_t i = 0; i < u.uses.size() && i < u.use_streams.size(); ++i)
      if (u.use_streams[i] == stream && !event_done(u.uses[i])) return true;
  }
  return false;
}

bool Runtime::run_blocked(const Unit& u) const noexcept {
  if (blocked_streams_.empty()) return false;
  if (!u.run) return behind_stall(u);
  for (const auto& w : u.run->units) {
    auto v = w.lock();
    if (v && v->run == u.run && behind_stall(*v)) return true;
  }
  return false;
}

void Runtime::note_stream_wait(CUstream stream) noexcept {
  if (detail::stream_capturing(stream)) return;  // a graph's wait: its replays are pinned, not waited for
  std::lock_guard lock(mutex_);
  std::erase_if(blocked_streams_, [](const auto& s) { return event_done(s.second); });
  SharedEvent passed = record_event(stream);
  if (!passed) return;
  try {
    blocked_streams_.emplace_back(stream, std::move(passed));
  } catch (...) {
  }
}

void Runtime::mark_stalled_locked(const std::vector<std::shared_ptr<Unit>>& units) noexcept {
  std::erase_if(blocked_streams_, [](const auto& s) { return event_done(s.second); });
  CUdeviceptr begin = 0;
  size_t bytes = 0;
  for (const auto& v : units) {
    bool stalled = false;
    for (size_t i = 0; i < v->uses.size() && i < v->use_streams.size(); ++i) {
      if (event_done(v->uses[i])) continue;
      stalled = true;
      try {
        blocked_streams_.emplace_back(v->use_streams[i], v->uses[i]);
      } catch (...) {
      }
    }
    if (!stalled) continue;
    if (begin == 0) begin = v->begin;
    bytes += v->bytes();
  }
  stats_.stalled_waits.add();
  emit("stalled", begin, bytes);
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    log(LogLevel::kError, "a staged range's queued uses did not complete within {} ms (a stream waiting for work "
        "not launched yet?): staging over the budget instead of waiting (NEUZIP_WAIT_PATIENCE_MS)",
        config_.wait_patience_ms);
}

std::vector<std::shared_ptr<Unit>> Runtime::run_members(const std::shared_ptr<Unit>& u) {
  std::vector<std::shared_ptr<Unit>> members;
  if (!u->run) {
    members.push_back(u);
  } else {
    for (const auto& w : u->run->units)
      if (auto v = w.lock(); v && v->run == u->run) members.push_back(std::move(v));
  }
  return members;
}

bool Runtime::wait_run_uses(const std::shared_ptr<Unit>& victim) noexcept {
  Unit& u = *victim;
  const auto start = TraceClock::now();
  std::vector<std::shared_ptr<Unit>> members;
  std::vector<SharedEvent> pending;
  try {
    members = run_members(victim);
    for (const auto& v : members)
      for (const auto& e : v->uses)
        if (!event_done(e)) pending.push_back(e);
  } catch (...) {
    members.clear();
  }
  if (members.empty()) {  // no memory to list them: wait as before, unbounded
    if (u.run) {
      for (const auto& w : u.run->units)
        if (auto v = w.lock()) v->wait_uses();
    } else {
      u.wait_uses();
    }
    return true;
  }
  if (run_blocked(u)) return false;  // marked already: no wait at all
  const bool done = await_events(pending, start);
  if (done) {
    for (const auto& v : members) v->clear_uses();
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
