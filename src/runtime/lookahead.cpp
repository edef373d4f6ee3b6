// lookahead.cpp: the look-ahead stager.
//
// Training and inference loops use their weights in the same order every
// iteration: the unit used after X last time (Unit::next_guess, learned from
// the launching threads' uses) will be needed after X now. A thread of the
// runtime's own follows that order from wherever the launching thread just
// was, and keeps the next `lookahead_window()` bytes staged on the prefetch
// stream: it makes room (eviction, without waiting for queued work), takes
// handles from the pool, and then drops the runtime lock for the VMM calls
// and the decode launch. When the prediction is right the launching thread
// finds its units staged and only orders its stream after their decode: no
// VMM call, decode launch or host wait on it.
//
// While the lock is dropped the units being staged are marked `incoming`
// and held (in_flight): eviction skips them, a launch that needs one waits
// for the stager to finish it (stager_cv_), and freeing their allocation
// waits likewise, so no mapping outlives its address range.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <unordered_set>

#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

namespace {
thread_local bool t_stager_thread = false;
}  // namespace

bool on_stager_thread() noexcept { return t_stager_thread; }

// Off unless NEUZIP_LOOKAHEAD_MB is set: on the simulator's A100 cost model
// it has not lowered the launching thread's hook time (docs/RESULTS.md §4.9,
// §4.9.4: since its evictions are settled off the lock, most of that time in
// training is the launching thread's own encodes). `auto` windows: half a
// fixed budget, else twice the most one call had to stage (about two layers).
size_t Runtime::lookahead_window() const noexcept {
  if (!config_.lookahead_bytes) return 0;
  if (*config_.lookahead_bytes != Config::kLookaheadAuto) return *config_.lookahead_bytes;
  if (config_.staging_bytes) return *config_.staging_bytes / 2;
  return std::max(size_t{8} << 20, 2 * launch_staging_peak_);
}

void Runtime::request_lookahead(const std::shared_ptr<Unit>& from) noexcept {
  if (!from) return;
  if (lookahead_window() == 0 || stager_failed_) {
    // The launching thread decodes one call's ranges ahead.
    if (!guess_next_call()) start_prefetch(first_compressed_guess(*from));
    return;
  }
  if (!stager_started_) {
    try {
      std::thread(&Runtime::stager_main, this).detach();
      stager_started_ = true;
      // Detached: at exit it must be idle before the driver goes away.
      std::atexit([] {
        if (Runtime* rt = instance_if_active()) rt->stop_stager();
      });
    } catch (...) {
      stager_failed_ = true;
      log(LogLevel::kError, "cannot start the look-ahead stager thread: staging on the launching thread");
      return;
    }
  }
  lookahead_from_ = from;
  stager_cv_.notify_all();
}

void Runtime::stop_stager() noexcept {
  // Another thread may hold the lock for good at exit (exit() from a
  // signal handler, a thread stopped mid-call): never wait for it. The
  // stager starts nothing once stopped; one staging in progress gets two
  // seconds to finish before the driver may go away.
  stop_stager_ = true;
  stager_cv_.notify_all();
  for (int i = 0; i < 2000 && stager_busy_.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void Runtime::wait_for_stager_locked() noexcept {
  lookahead_from_.reset();
  // Evictions handed to it are settled first (a stopped stager settles
  // nothing more: their runs stay staged, released from its hold).
  stager_cv_.wait(mutex_, [&] { return stop_stager_ || (stager_busy_ == 0 && to_settle_.empty()); });
  if (stop_stager_) {
    stager_cv_.wait(mutex_, [&] { return stager_busy_ == 0; });
    drop_settle_queue_locked();
  }
}

// The uses the next eviction would wait for: those of the least recently
// used staged run that only its queued work keeps (lock held).
std::vector<SharedEvent> Runtime::lru_pending_uses(std::shared_ptr<Unit>* victim_out) noexcept {
  const std::shared_ptr<Unit> victim = lru_evictable(true);
  *victim_out = victim;
  std::vector<SharedEvent> out;
  if (!victim || !victim->run) return out;
  try {
    for (const auto& w : victim->run->units)
      if (auto v = w.lock()) {
        seal_open_use(*v);
        for (const auto& e : v->uses)
          if (!event_done(e)) out.push_back(e);
      }
  } catch (...) {
    out.clear();
  }
  return out;
}

void Runtime::stager_main() noexcept {
  t_stager_thread = true;
  // Every call of this thread is relaxed, for its whole life: it runs while
  // a program's threads capture graphs, and one store allocation or event
  // wait of ours in the default (global) mode invalidates their capture
  // (the settling of handed-over evictions allocated stores unguarded:
  // runtime-random-budget-8-lookahead found it, docs/RESULTS.md §4.9.12).
  RelaxedCaptureScope relaxed;
  std::unique_lock lock(mutex_);
  CUcontext bound = nullptr;
  for (;;) {
    stager_cv_.wait(lock, [&] { return stop_stager_ || !lookahead_from_.expired() || !to_settle_.empty(); });
    if (stop_stager_) return;
    if (!setup_ok_ || context_ == nullptr) {
      drop_settle_queue_locked();
      continue;
    }
    // Our decode launches go to the runtime's context.
    if (bound != context_ && driver().base.cuCtxSetCurrent(context_) == CUDA_SUCCESS) bound = context_;
    settle_queued(lock);  // evictions the launching threads handed over come first
    auto from = lookahead_from_.lock();
    lookahead_from_.reset();
    if (from && setup_ok_ && context_ != nullptr && !stop_stager_) stage_ahead(lock, from);
    restore_due_stores();  // evicted to make its room: back once it is staged
  }
}

void Runtime::stage_ahead(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Unit>& from) noexcept {
  // (Relaxed capture mode: the stager thread's, for its life.)
  // Under pressure a guess would evict idle ranges (and encode them again)
  // for a decode that may not be needed.
  if (!config_.staging_bytes && !memory_plentiful()) return;
  const size_t window = lookahead_window();
  std::vector<std::shared_ptr<Unit>> want;
  size_t bytes = 0;
  if (!handoffs_.empty()) reap_handoffs(false);  // settled handovers free their units for the walk
  try {
    std::unordered_set<const Unit*> seen{from.get()};
    size_t ahead = 0;
    std::unordered_set<const Unit*> wanted;
    for (auto u = from->next_guess.lock(); u && !u->dead && seen.insert(u.get()).second; u = u->next_guess.lock()) {
      if (wanted.count(u.get()) != 0) continue;  // part of a guess's tag already
      ahead += u->bytes();
      if (ahead > window) break;
      if (u->state != UnitState::kCompressed || u->incoming || u->pins != 0 || u->handoff || u->rescue) continue;
      // The guess's whole tag (its weight): one run. A tag the window cannot
      // hold ends the walk (a part of it would only split the weight in two runs).
      auto tag = compressed_tag_of(u);
      size_t tag_bytes = 0;
      for (const auto& v : tag) tag_bytes += wanted.count(v.get()) == 0 ? v->bytes() : 0;
      if (ahead - u->bytes() + tag_bytes > window) break;
      for (auto& v : tag) {
        if (!wanted.insert(v.get()).second) continue;
        if (v != u) ahead += v->bytes();
        want.push_back(v);
        bytes += v->bytes();
      }
    }
  } catch (...) {
    return;
  }
  // Room: the least recently used staged ranges go, once their last uses
  // completed, settled with the lock dropped (eviction_ahead.cpp). Those uses
  // are waited for here, without the lock (the launching thread never waits
  // for this thread's waits); what still does not fit waits for the next round.
  auto refresh = [&] {
    // Units of the window may have been staged (or freed) while the lock was dropped.
    std::erase_if(want, [&](const auto& u) {
      const bool gone = u->dead || u->state != UnitState::kCompressed || u->incoming || u->handoff || u->rescue;
      if (gone) bytes -= u->bytes();
      return gone;
    });
  };
  auto room = [&] {
    evict_ahead(lock, bytes);
    if (stop_stager_ || !setup_ok_) return false;
    refresh();
    return !want.empty() && enforce_budget(bytes, false);
  };
  for (int round = 0; round < 16 && !want.empty() && !room(); ++round) {
    if (stop_stager_ || !setup_ok_ || want.empty()) return;
    std::shared_ptr<Unit> victim;
    std::vector<SharedEvent> uses = lru_pending_uses(&victim);
    if (uses.empty()) break;
    lock.unlock();
    const bool waited = await_events(uses, TraceClock::now());  // bounded: patient_wait.cpp
    lock.lock();
    if (stop_stager_ || !setup_ok_) return;
    if (!waited) {
      try {
        mark_stalled_locked(run_members(victim));
      } catch (...) {
      }
      break;
    }
    refresh();
  }
  if (stop_stager_ || !setup_ok_) return;
  while (!want.empty() && !enforce_budget(bytes, false)) {
    bytes -= want.back()->bytes();
    want.pop_back();
  }
  if (want.empty()) return;
  std::vector<std::shared_ptr<StagedRun>> acquired;
  try {
    if (acquire_runs(runs_of(want), acquired, false) != CUDA_SUCCESS) return;
  } catch (...) {
    return;
  }
  for (auto& u : want) {
    u->incoming = true;
    ++u->in_flight;
  }
  ++stager_busy_;
  const auto start = TraceClock::now();
  const CUstream stream = prefetch_stream_.get();
  if (stop_stager_) {
    for (auto& u : want) {
      u->incoming = false;
      --u->in_flight;
    }
    --stager_busy_;
    release_runs(acquired, false);
    stager_cv_.notify_all();
    return;
  }
  lock.unlock();
  uint64_t launches = 0;
  SharedEvent ready;
  CUresult r = map_and_decode(acquired, stream, launches);
  if (r == CUDA_SUCCESS) {
    ready = record_event(stream);
    if (!ready) {
      driver().base.cuStreamSynchronize(stream);  // no event: the decode is complete before anyone uses it
    }
  }
  lock.lock();
  --stager_busy_;
  bool lost = false;  // freed or retired while the lock was dropped
  for (auto& u : want) {
    u->incoming = false;
    if (u->in_flight > 0) --u->in_flight;
    lost = lost || u->dead || u->state != UnitState::kCompressed;
  }
  if (r != CUDA_SUCCESS || lost) {
    if (r == CUDA_SUCCESS && ready && *ready) driver().base.cuEventSynchronize(ready->get());
    release_runs(acquired, r == CUDA_SUCCESS);
    stager_cv_.notify_all();
    return;
  }
  stats_.decode_launches.add(launches);
  finish_runs(acquired, ready, stream, false, start);
  for (auto& u : want) {
    u->prefetched = true;
    u->lru_tick = ++tick_;
    try {
      staged_.push_back(u);
    } catch (...) {
    }
    stats_.prefetches.add();
    emit("prefetch", u->begin, u->bytes());
  }
  stager_cv_.notify_all();
}

}  // namespace nz::rt
