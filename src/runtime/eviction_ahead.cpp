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
    // As enforce_budget picks: least recently used first, ranges staged ahead
    // and not used yet last; only runs whose uses completed (no waiting here).
    std::shared_ptr<Unit> victim;
    for (int pass = 0; pass < 2 && !victim; ++pass) {
      for (auto& u : staged_) {
        if (pass == 0 && u->prefetched) continue;
        if ((!victim || u->lru_tick < victim->lru_tick) && run_evictable(*u, false)) victim = u;
      }
    }
    if (!victim) break;
    victim->prefetched = false;
    // A handover costs the host nothing to wait for: that stays under the lock.
    if (handoff_eligible(*victim) && hand_over(victim)) continue;
    if (!memory_plentiful() || !settle_unlocked(lock, victim)) break;
  }
  return pool_.in_use_bytes() + incoming <= budget;
}

bool Runtime::settle_unlocked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Unit>& victim) noexcept {
  const std::shared_ptr<StagedRun> run = victim->run;
  if (!run) return false;
  // What the change test needs of each unit, read under the lock.
  struct Job {
    std::shared_ptr<Unit> unit;
    CUdeviceptr begin = 0;
    size_t bytes = 0;
    int dtype = 0;
    size_t hint = 0;  // encode_size_hint of a rewritten range (the same content: the size matches exactly)
    uint64_t hash = 0;
    CompressOutcome outcome = CompressOutcome::kFailed;
    StoredRange fresh;
    TraceClock::time_point start{};
    bool encoded = false;  // the pages did not match the store: `fresh` is the encoding
  };
  std::vector<Job> jobs;
  try {
    for (const auto& w : run->units) {
      auto v = w.lock();
      if (!v || v->run != run || v->dead || v->state != UnitState::kStaged) continue;
      Job& j = jobs.emplace_back();
      j.begin = v->begin;
      j.bytes = v->bytes();
      j.dtype = v->dtype;
      j.hint = encode_size_hint(*v, false);
      j.unit = std::move(v);
    }
  } catch (...) {
    return false;
  }
  if (jobs.empty()) return false;
  // The expected hashes: a unit that would be dropped needs no encode.
  std::vector<std::pair<uint64_t, bool>> expected;  // (store hash, a store to drop to)
  try {
    expected.reserve(jobs.size());
    for (const auto& j : jobs) expected.emplace_back(j.unit->store.hash, j.unit->store.data && !j.unit->recode);
  } catch (...) {
    return false;
  }
  for (auto& j : jobs) {
    ++j.unit->in_flight;
    j.unit->incoming = true;
  }
  ++stager_busy_;
  lock.unlock();
  bool ok = true;
  for (size_t i = 0; i < jobs.size() && ok; ++i) {
    Job& j = jobs[i];
    if (ahead_store_->hash(j.begin, j.bytes, j.hash) != CUDA_SUCCESS) {
      ok = false;
      break;
    }
    if (j.hash == expected[i].first && expected[i].second) continue;  // dropped: the store holds it
    j.start = TraceClock::now();
    j.outcome = ahead_store_->compress(j.begin, j.bytes, j.dtype, config_, j.fresh, j.hint);
    j.encoded = true;
  }
  lock.lock();
  --stager_busy_;
  bool lost = false;
  for (auto& j : jobs) {
    j.unit->incoming = false;
    if (j.unit->in_flight > 0) --j.unit->in_flight;
    lost = lost || j.unit->dead || j.unit->state != UnitState::kStaged || j.unit->run != run;
  }
  stager_cv_.notify_all();
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
