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
// Marks spread through events: an event recorded on a marked stream is behind
// its wait, and a stream made to wait for it (cuStreamWaitEvent) is marked
// until that wait passed (after_event_record, after_stream_wait_event).
// A unit with an unfinished use on a marked stream is passed over
// (run_evictable, hand-over eligibility); the caller evicts another run or
// stages over the budget. The marks end by themselves when their events
// complete. Events are polled (cuEventSynchronize cannot time out), with
// sleeps between the queries.
#include <algorithm>
#include <chrono>
#include <thread>

#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {
namespace {
// Events remembered behind marks: a program records a handful per step on a
// stream; past this many the oldest is forgotten (found by the patience then).
constexpr size_t kMaxEventsBehindMarks = 256;
}  // namespace

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

// The marks have a mutex of their own, never held while waiting: the event
// hooks (any thread, NCCL's own included) must not queue behind the runtime
// mutex, which a host wait holds for up to the patience.
bool Runtime::behind_stall(const Unit& u) const noexcept {
  if (!streams_marked_.load(std::memory_order_relaxed)) return false;
  std::lock_guard marks(marks_mu_);
  return behind_marks(u);
}

bool Runtime::behind_marks(const Unit& u) const noexcept {
  for (const StreamMark& m : blocked_streams_) {
    if (event_done(m.until)) continue;
    for (size_t i = 0; i < u.uses.size() && i < u.use_streams.size(); ++i) {
      if (event_done(u.uses[i])) continue;
      if (u.use_streams[i] == m.stream || implicitly_after(m.order, u.use_streams[i])) return true;
    }
  }
  return false;
}

Runtime::LegacyOrder Runtime::legacy_order(CUstream s) noexcept {
  using O = LegacyOrder;
  if (s == nullptr || s == CU_STREAM_LEGACY) return O::kLegacy;  // (uses name the per-thread stream as such)
  if (s == CU_STREAM_PER_THREAD) return O::kBlocking;  // it synchronizes with the legacy stream
  unsigned flags = 0;
  if (driver().cuStreamGetFlags == nullptr) return O::kBlocking;  // (every driver has it) not known: the safe side
  if (driver().cuStreamGetFlags(s, &flags) != CUDA_SUCCESS) return O::kNone;  // destroyed: its work ran
  return (flags & CU_STREAM_NON_BLOCKING) != 0 ? O::kNone : O::kBlocking;
}

// CUDA's implicit synchronization: work queued on the legacy default stream
// waits for the work queued before it on every blocking stream (those
// created without CU_STREAM_NON_BLOCKING, the per-thread default stream
// included), and work queued on a blocking stream waits for the legacy
// stream's. So a blocking stream waiting for later work holds the legacy
// stream's later work too, and the reverse (a CuPy stream, a plain
// cudaStreamCreate, beside the default stream). Uses queued before the
// mark count as well, as they do on the marked stream itself: the cost is
// memory over the budget until the wait passed, never a wait. Not followed
// further: a blocking stream's work queued after legacy work that is itself
// behind another blocking stream (found by the patience).
bool Runtime::implicitly_after(LegacyOrder marked, CUstream s) noexcept {
  if (marked == LegacyOrder::kNone) return false;
  const LegacyOrder o = legacy_order(s);
  return (marked == LegacyOrder::kLegacy && o == LegacyOrder::kBlocking) ||
         (marked == LegacyOrder::kBlocking && o == LegacyOrder::kLegacy);
}

bool Runtime::stream_behind_marks(CUstream s) const noexcept {
  return std::any_of(blocked_streams_.begin(), blocked_streams_.end(), [&](const StreamMark& m) {
    return !event_done(m.until) && (m.stream == s || implicitly_after(m.order, s));
  });
}

void Runtime::add_mark(CUstream stream, SharedEvent until) noexcept {
  try {
    blocked_streams_.push_back({stream, std::move(until), legacy_order(stream)});
    streams_marked_.store(true, std::memory_order_relaxed);
  } catch (...) {
  }
}

bool Runtime::run_blocked(const Unit& u) const noexcept {
  if (!streams_marked_.load(std::memory_order_relaxed)) return false;
  std::lock_guard marks(marks_mu_);
  if (!u.run) return behind_marks(u);
  for (const auto& w : u.run->units) {
    auto v = w.lock();
    if (v && v->run == u.run && behind_marks(*v)) return true;
  }
  return false;
}

void Runtime::note_stream_wait(CUstream stream) noexcept {
  if (detail::stream_capturing(stream)) return;  // a graph's wait: its replays are pinned, not waited for
  std::lock_guard marks(marks_mu_);
  prune_marks();
  mark_stream(stream);
}

void Runtime::mark_stream(CUstream stream) noexcept {
  SharedEvent passed = record_event(stream);
  if (passed) add_mark(stream, std::move(passed));
}

bool Runtime::prune_marks() noexcept {
  std::erase_if(blocked_streams_, [](const StreamMark& m) { return event_done(m.until); });
  if (!blocked_streams_.empty()) return true;
  // No wait left queued: every event recorded behind one has passed it.
  events_behind_marks_.clear();
  streams_marked_.store(false, std::memory_order_relaxed);
  return false;
}

// Chains through events: a stream that waits (cuStreamWaitEvent) for an event
// recorded on a marked stream after its mark waits for the same later work
// (PyTorch orders its streams this way: a consumer stream waits for the
// event of a communication stream). Without this, only the patience found
// such a stream: one host wait of NEUZIP_WAIT_PATIENCE_MS, or a handover
// whose fence would deadlock the device. An event recorded on a stream CUDA
// orders after a marked one (implicitly_after) is behind its wait as well.
void Runtime::after_event_record(CUevent event, CUstream stream, bool per_thread) noexcept {
  if (!streams_marked_.load(std::memory_order_relaxed) || event == nullptr) return;
  const CUstream s = resolve(stream, per_thread);
  if (detail::stream_capturing(s)) return;  // a node of a graph, not a record now
  std::lock_guard marks(marks_mu_);
  if (!prune_marks()) return;
  const bool behind = stream_behind_marks(s);
  auto it = std::find(events_behind_marks_.begin(), events_behind_marks_.end(), event);
  if (!behind) {
    if (it != events_behind_marks_.end()) events_behind_marks_.erase(it);  // recorded again elsewhere
    return;
  }
  if (it != events_behind_marks_.end()) return;
  if (events_behind_marks_.size() >= kMaxEventsBehindMarks) events_behind_marks_.erase(events_behind_marks_.begin());
  try {
    events_behind_marks_.push_back(event);
  } catch (...) {
  }
}

void Runtime::after_stream_wait_event(CUstream stream, bool per_thread, CUevent event) noexcept {
  if (!streams_marked_.load(std::memory_order_relaxed) || event == nullptr) return;
  const CUstream s = resolve(stream, per_thread);
  if (detail::stream_capturing(s)) return;
  std::lock_guard marks(marks_mu_);
  if (!prune_marks()) return;
  auto it = std::find(events_behind_marks_.begin(), events_behind_marks_.end(), event);
  if (it == events_behind_marks_.end()) return;
  if (driver().base.cuEventQuery(event) != CUDA_ERROR_NOT_READY) {  // passed (or gone): nothing to wait for
    events_behind_marks_.erase(it);
    return;
  }
  mark_stream(s);  // until the wait for `event` passed
}

bool Runtime::mark_unit_uses(const Unit& v) noexcept {
  bool stalled = false;
  for (size_t i = 0; i < v.uses.size() && i < v.use_streams.size(); ++i) {
    if (event_done(v.uses[i])) continue;
    stalled = true;
    add_mark(v.use_streams[i], v.uses[i]);
  }
  return stalled;
}

void Runtime::note_stall_locked(CUdeviceptr begin, size_t bytes) noexcept {
  stats_.stalled_waits.add();
  emit("stalled", begin, bytes);
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    log(LogLevel::kError, "a staged range's queued uses did not complete within {} ms (a stream waiting for work "
        "not launched yet?): staging over the budget instead of waiting (NEUZIP_WAIT_PATIENCE_MS)",
        config_.wait_patience_ms);
}

void Runtime::mark_stalled_locked(const std::vector<std::shared_ptr<Unit>>& units) noexcept {
  CUdeviceptr begin = 0;
  size_t bytes = 0;
  {
    std::lock_guard marks(marks_mu_);
    prune_marks();
    for (const auto& v : units) {
      if (!mark_unit_uses(*v)) continue;
      if (begin == 0) begin = v->begin;
      bytes += v->bytes();
    }
  }
  note_stall_locked(begin, bytes);
}

// The decode that staged a unit runs on the launching stream, behind
// whatever that stream waits for. Memory the decode reads (the unit's store,
// a host copy) is freed once it completed; when the host would wait for that
// (no device-side free possible), the wait is bounded like the others, and
// a decode behind a marked stream is not waited for at all: the caller keeps
// the memory (over the budget) instead.
bool Runtime::await_decode(Unit& u) noexcept {
  if (event_done(u.ready)) return true;
  if (behind_stall(u)) return false;
  const auto start = TraceClock::now();
  if (await_events({u.ready}, start)) return true;
  {
    std::lock_guard marks(marks_mu_);
    prune_marks();
    mark_unit_uses(u);
  }
  note_stall_locked(u.begin, u.bytes());
  return false;
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
    for (const auto& v : members) {
      seal_open_use(*v);
      for (const auto& e : v->uses)
        if (!event_done(e)) pending.push_back(e);
    }
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
