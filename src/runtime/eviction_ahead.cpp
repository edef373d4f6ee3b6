// eviction_ahead.cpp: the look-ahead stager's evictions, settled without the
// runtime lock.
//
// To make room for its window the stager evicts the least recently used
// staged runs. Settling a run (eviction.cpp) hashes each unit and encodes the
// changed ones again: device work the host waits for, and in training most of
// an eviction's cost (docs/RESULTS.md §4.9.3: 55 % of the launching thread's
// hook time was encodes). Under the runtime lock, every launch that needs the
// lock meanwhile waits for all of it. Here the stager holds the run's units
// (in_flight, so nothing evicts or hands them over, and `incoming`, so a
// launch that needs one waits for the stager as it does for a unit the stager
// is mapping), drops the lock for the hashes and the encodes (with its own
// CompressedStore: its own result words), and takes the lock again to adopt
// the new stores and unmap the run. If anything changed the run meanwhile
// (its units retagged or made resident), the results are discarded and the
// run stays as it is.
//
// Old store, encode buffer and new store coexist for a moment (the launching
// thread's settle frees the old store first): so only while memory is
// plentiful; short of memory the stager leaves evictions to enforce_budget.
#include <algorithm>
#include <chrono>

#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

namespace {
// Runs settled per call at most (each one a hash per unit, perhaps encodes).
constexpr int kMaxRunsAhead = 64;
}  // namespace

bool Runtime::evict_ahead(std::unique_lock<std::mutex>& lock, size_t incoming) noexcept {
  if (!config_.staging_bytes || !ahead_store_) return false;
  const size_t budget = *config_.staging_bytes;
  for (int i = 0; i < kMaxRunsAhead && pool_.in_use_bytes() + incoming > budget; ++i) {
    if (stop_stager_ || !setup_ok_) return false;
    // Only runs whose uses completed (no waiting here).
    const std::shared_ptr<Unit> victim = lru_evictable(false);
    if (!victim) break;
    victim->prefetched = false;
    // A handover costs the host nothing to wait for: that stays under the lock.
    if (handoff_eligible(*victim) && hand_over(victim)) continue;
    if (!memory_plentiful() || !settle_unlocked(lock, victim)) break;
  }
  return pool_.in_use_bytes() + incoming <= budget;
}

std::vector<std::shared_ptr<Unit>> Runtime::hold_for_settling(const std::shared_ptr<StagedRun>& run) noexcept {
  std::vector<std::shared_ptr<Unit>> held;
  try {
    for (const auto& w : run->units) {
      auto v = w.lock();
      if (v && v->run == run && !v->dead && v->state == UnitState::kStaged) held.push_back(std::move(v));
    }
  } catch (...) {
    held.clear();
  }
  for (auto& v : held) {
    ++v->in_flight;
    v->incoming = true;
  }
  return held;
}

void Runtime::release_settling(const std::vector<std::shared_ptr<Unit>>& held) noexcept {
  for (const auto& v : held) {
    v->incoming = false;
    if (v->in_flight > 0) --v->in_flight;
  }
  stager_cv_.notify_all();
}

bool Runtime::settle_unlocked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Unit>& victim) noexcept {
  const std::shared_ptr<StagedRun> run = victim->run;
  if (!run) return false;
  std::vector<std::shared_ptr<Unit>> held = hold_for_settling(run);
  if (held.empty()) return false;
  return settle_held(lock, run, held);
}

// A launching thread making room under a fixed budget with the stager on:
// instead of hashing and encoding the victim itself, it queues the run for
// the stager (held, so no launch uses it and a launch that needs it waits)
// and counts it as gone. Staging goes over the budget by at most a window's
// worth of such runs until the stager has settled them.
bool Runtime::defer_eviction(const std::shared_ptr<Unit>& victim) noexcept {
  if (!config_.staging_bytes || pool_.arena() || on_stager_thread() || !stager_started_ || stager_failed_ ||
      stop_stager_ || !ahead_store_)
    return false;
  const std::shared_ptr<StagedRun> run = victim->run;
  if (!run || deferred_bytes_ + run->bytes() > std::max(lookahead_window(), run->bytes())) return false;
  if (!memory_plentiful()) return false;
  try {
    to_settle_.emplace_back();
  } catch (...) {
    return false;
  }
  to_settle_.back().run = run;
  to_settle_.back().held = hold_for_settling(run);
  if (to_settle_.back().held.empty()) {
    to_settle_.pop_back();
    return false;
  }
  deferred_bytes_ += run->bytes();
  stats_.evictions_deferred.add();
  stager_cv_.notify_all();
  return true;
}

void Runtime::settle_queued(std::unique_lock<std::mutex>& lock) noexcept {
  while (!to_settle_.empty() && !stop_stager_) {
    PendingSettle p = std::move(to_settle_.front());
    to_settle_.pop_front();
    ++stager_busy_;  // until it is settled, as a staging in progress
    settle_held(lock, p.run, p.held);
    --stager_busy_;
    deferred_bytes_ -= std::min(deferred_bytes_, p.run->bytes());
    stager_cv_.notify_all();
  }
}

void Runtime::drop_settle_queue_locked() noexcept {
  for (auto& p : to_settle_) release_settling(p.held);
  to_settle_.clear();
  deferred_bytes_ = 0;
}

bool Runtime::settle_held(std::unique_lock<std::mutex>& lock, const std::shared_ptr<StagedRun>& run,
                          const std::vector<std::shared_ptr<Unit>>& held) noexcept {
  // What the change test needs of each unit, read under the lock.
  struct Job {
    std::shared_ptr<Unit> unit;
    CUdeviceptr begin = 0;
    size_t bytes = 0;
    int dtype = 0;
    size_t hint = 0;  // encode_size_hint of a rewritten range (the same content: the size matches exactly)
    int hint_dtype = 0;  // the nz_dtype of its last encoding (untyped bytes: tried first)
    uint64_t hash = 0;
    CompressOutcome outcome = CompressOutcome::kFailed;
    StoredRange fresh;
    TraceClock::time_point start{};
    bool encoded = false;  // the pages did not match the store: `fresh` is the encoding
  };
  std::vector<Job> jobs;
  std::vector<SharedEvent> uses;  // queued work that still reads or writes them (a deferred eviction's)
  try {
    for (const auto& v : held) {
      if (v->run != run || v->dead || v->state != UnitState::kStaged) continue;
      seal_open_use(*v);
      for (const auto& e : v->uses)
        if (e && *e && !event_done(e)) uses.push_back(e);
      Job& j = jobs.emplace_back();
      j.begin = v->begin;
      j.bytes = v->bytes();
      j.dtype = v->dtype;
      j.hint = encode_size_hint(*v, false);
      j.hint_dtype = v->encoded_dtype;
      j.unit = v;
    }
  } catch (...) {
    release_settling(held);
    return false;
  }
  if (jobs.empty()) {
    release_settling(held);
    return false;
  }
  // The expected hashes: a unit that would be dropped needs no encode.
  std::vector<std::pair<uint64_t, bool>> expected;  // (store hash, a store to drop to)
  try {
    expected.reserve(jobs.size());
    for (const auto& j : jobs) expected.emplace_back(j.unit->store.hash, j.unit->store.data && !j.unit->recode);
  } catch (...) {
    release_settling(held);
    return false;
  }
  // A use behind a stream that waits for later work: left staged at once.
  if (run_blocked(*jobs.front().unit)) {
    release_settling(held);
    return false;
  }
  ++stager_busy_;
  lock.unlock();
  // Bounded (patient_wait.cpp): a launching thread may wait for this one.
  if (!await_events(uses, TraceClock::now())) {
    lock.lock();
    --stager_busy_;
    mark_stalled_locked(held);
    release_settling(held);
    return false;  // left staged
  }
  bool ok = true;
  for (size_t i = 0; i < jobs.size() && ok; ++i) {
    Job& j = jobs[i];
    if (ahead_store_->hash(j.begin, j.bytes, j.hash) != CUDA_SUCCESS) {
      ok = false;
      break;
    }
    if (j.hash == expected[i].first && expected[i].second) continue;  // dropped: the store holds it
    j.start = TraceClock::now();
    j.outcome = ahead_store_->compress(j.begin, j.bytes, j.dtype, config_, j.fresh, j.hint, j.hint_dtype);
    j.encoded = true;
  }
  lock.lock();
  --stager_busy_;
  release_settling(held);
  bool lost = false;
  for (auto& j : jobs) lost = lost || j.unit->dead || j.unit->state != UnitState::kStaged || j.unit->run != run;
  // Retagged, made resident or freed meanwhile: the new stores (freed with
  // `jobs`) describe nothing that is still to be evicted.
  if (!ok || lost || stop_stager_ || !setup_ok_) return false;
  Allocation* a = allocation_containing(run->begin);
  if (a == nullptr) return false;
  bool stays = false;
  for (auto& j : jobs) {
    Unit& u = *j.unit;
    const Verdict verdict = judge_eviction(u, j.hash);
    if (verdict == Verdict::kDrop) continue;
    if (verdict == Verdict::kRetire) {
      retire(*a, j.unit);  // the whole run becomes resident memory
      return true;
    }
    // The old store describes content that no longer exists (or was given up).
    drop_store(u);
    if (!j.encoded) {
      // Matched a store the lock-holder's verdict disagrees with (a recode
      // requested meanwhile): settled at a later eviction.
      stays = true;
      continue;
    }
    if (j.outcome == CompressOutcome::kNoMemory) {
      stays = true;  // staged without a store: encoded at a later eviction
      continue;
    }
    if (j.outcome != CompressOutcome::kStored) {
      retire(*a, j.unit);  // cannot hold the new content compressed
      return true;
    }
    adopt_encoding(u, std::move(j.fresh), verdict == Verdict::kReencode, j.start);
    stats_.encoded_ahead.add();
  }
  if (stays) {
    update_saved();
    return false;
  }
  unmap_settled(run, false);
  stats_.evicted_ahead.add();
  emit("evict_ahead", run->begin, run->bytes());
  return true;
}

}  // namespace nz::rt
