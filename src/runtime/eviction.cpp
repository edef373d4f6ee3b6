// eviction.cpp: the rolling pool's policy: LRU eviction under a fixed or
// adaptive budget (drop unchanged, recompress changed), and memory pressure.
#include "runtime/runtime.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "runtime/log.h"
#include "runtime/rewrite_policy.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

// ---- eviction and pressure -------------------------------------------------------------------

bool Runtime::memory_plentiful() noexcept {
  size_t free = 0, total = 0;
  if (driver().base.cuMemGetInfo(&free, &total) != CUDA_SUCCESS || total == 0) return false;
  stats_.device_used_peak.raise_to(total - free);
  if (free > total / 8) return true;
  reserve_for_pressure();
  return false;
}

// Recompressing a changed range needs a bound-sized output buffer; under
// pressure there may be none, and the range would have to stay resident just
// when memory is shortest. So once memory runs low, one such buffer (for the
// largest unit) is kept aside for good.
void Runtime::reserve_for_pressure() noexcept {
  if (!store_ || store_->reserve_bytes() > 0 || reserve_given_up_) return;
  size_t need = 0;
  const size_t largest_unit = std::max(kMaxUnitBytes, vmm_.page_size());
  for (nz_dtype t : {NZ_BF16, NZ_FP16, NZ_FP32}) {
    for (bool lossy : {false, true}) {
      const nz_options opts = config_.codec_options(t, lossy);
      need = std::max(need, nz_compress_bound(largest_unit / nz_dtype_size(t), &opts));
    }
  }
  store_->ensure_reserve(need);
  if (store_->reserve_bytes() > 0) emit("reserve", 0, need);
}

void Runtime::sample_device_used() noexcept {
  size_t free = 0, total = 0;
  if (driver().base.cuMemGetInfo(&free, &total) == CUDA_SUCCESS) stats_.device_used_peak.raise_to(total - free);
}

void Runtime::update_saved() noexcept { stats_.device_bytes_saved(); }

// The change test's verdict on a staged unit whose pages hash to `hash`,
// with its bookkeeping (a drop is counted and traced here).
Runtime::Verdict Runtime::judge_eviction(Unit& u, uint64_t hash) noexcept {
  const bool unchanged = hash == u.store.hash && !u.recode;
  u.changes.note(hash != u.store.hash, generation_);
  // A host copy of the store describes content that no longer exists.
  if (hash != u.store.hash) u.store.host_copy = HostStoreCopy{};
  if (unchanged && u.store.data) {
    stats_.drops.add();
    u.change_streak = 0;
    ++u.clean_evictions;
    emit("drop", u.begin, u.bytes());
    return Verdict::kDrop;
  }
  u.clean_evictions = 0;
  if (unchanged) {
    u.change_streak = 0;  // its store was given up while staged (pressure): encode again
    return Verdict::kReencode;
  }
  u.ever_changed = true;
  if (!u.recode) ++u.change_streak;
  u.recode = false;
  if (keep_rewritten_resident(u.change_streak, config_.staging_bytes.has_value(), u.bytes())) {
    log(LogLevel::kDebug, "range {} changed at {} uses in a row: resident from now on", hex(u.begin), u.change_streak);
    return Verdict::kRetire;
  }
  return Verdict::kRecompress;
}

// What to expect of a new encoding of `u` (CompressedStore::compress's
// size_hint): the same content encodes to the same size; a rewritten weight
// to about the same (a 1/64 margin; if it is larger after all, the encode is
// done again into a bound-sized buffer).
size_t Runtime::encode_size_hint(const Unit& u, bool reencode) noexcept {
  if (u.encoded_bytes == 0) return 0;
  return reencode ? u.encoded_bytes : u.encoded_bytes + u.encoded_bytes / 64;
}

void Runtime::drop_store(Unit& u) noexcept {
  stats_.bytes_compressed.sub(u.store.bytes);
  u.store.data.reset();
  u.store.bytes = 0;
}

void Runtime::adopt_encoding(Unit& u, StoredRange&& fresh, bool reencode, TraceClock::time_point start) noexcept {
  stats_.bytes_compressed.add(fresh.bytes);
  u.store = std::move(fresh);
  u.encoded_bytes = u.store.bytes;
  u.encoded_dtype = u.store.header.size() > 6 ? u.store.header[6] : 0;
  (reencode ? stats_.reencodes : stats_.recompressions).add();
  emit_timed(reencode ? "reencode" : "recompress", u.begin, u.bytes(), start,
             fmt::format("\"compressed\":{}", u.store.bytes));
}

// Settles one unit of a run that is about to be unmapped: unchanged content
// is dropped (its store is still valid), changed content is encoded again.
// `may_release`: the run is this unit alone, so a lossless encode may give
// the staging back before the new store is allocated (the two never coexist).
Runtime::Settled Runtime::settle(const std::shared_ptr<Unit>& u, bool may_release) noexcept {
  uint64_t hash = 0;
  if (store_->hash(u->begin, u->bytes(), hash) != CUDA_SUCCESS) return Settled::kNoMemory;
  const Verdict verdict = judge_eviction(*u, hash);
  if (verdict == Verdict::kDrop) return Settled::kStored;
  if (verdict == Verdict::kRetire) return Settled::kRetire;
  const bool unchanged = verdict == Verdict::kReencode;
  if (unchanged && u->store.host_copy.slot && host_copy_ready(*u)) {
    // Its store comes back from the host copy once the run's pages are gone
    // (restore_due_stores; allocated while they were still mapped, lora's
    // peak held a cluster's pages and stores at once: 0.869x against 0.834x)...
    bool due = !may_release || memory_plentiful();
    if (due) {
      try {
        restores_due_.push_back(u);
      } catch (...) {
        due = false;
      }
    }
    // ...or, short of memory, it stays there: decodes read it from host
    // memory until an eviction with memory to spare brings it back.
    if (!due) {
      stats_.stores_left_in_host.add();
      emit("store_in_host", u->begin, u->bytes());
    }
    return Settled::kStored;
  }
  // The old store describes content that no longer exists: give its memory
  // to the new encoding (if that fails, the staged pages stay the data).
  drop_store(*u);
  StoredRange fresh;
  CompressOutcome outcome;
  bool released = false;
  const auto start = TraceClock::now();
  if (CompressedStore::lossy_for(u->dtype, config_) || !may_release) {
    outcome = store_->compress(u->begin, u->bytes(), u->dtype, config_, fresh, encode_size_hint(*u, unchanged),
                               u->encoded_dtype);
  } else {
    // Lossless: the staging goes back as soon as the encoding is safe, before
    // the new store is allocated (the two never coexist; matters under pressure).
    struct Release {
      Runtime* self;
      StagedRun* run;
      bool* released;
    } ctx{this, u->run.get(), &released};
    CompressedStore::SourceRelease release{+[](void* c) {
                                             auto& r = *static_cast<Release*>(c);
                                             r.self->pool_.unmap(r.run->begin, r.run->memory);
                                             r.self->pool_.give_back(r.run->memory);
                                             // Short of memory, the new store needs these pages, not a
                                             // cached handle; past a fixed budget, the budget does (a
                                             // handle kept for the next run would sit beside the stores
                                             // encoded meanwhile: the peak of issue 13's runs).
                                             auto& pool = r.self->pool_;
                                             const auto& budget = r.self->config_.staging_bytes;
                                             size_t free = 0, total = 0;
                                             if (driver().base.cuMemGetInfo(&free, &total) == CUDA_SUCCESS &&
                                                 free <= total / 8) {
                                               pool.trim(0);
                                             } else if (budget && !pool.arena() && pool.physical_bytes() > *budget) {
                                               pool.trim(*budget > pool.in_use_bytes() ? *budget - pool.in_use_bytes()
                                                                                       : 0);
                                             }
                                             *r.released = true;
                                           },
                                           &ctx};
    outcome = store_->compress_releasing(u->begin, u->bytes(), u->dtype, config_, hash, release, fresh,
                                         encode_size_hint(*u, unchanged), u->encoded_dtype);
  }
  // (Nothing fails after a release: `released` implies kStored.)
  if (outcome == CompressOutcome::kNoMemory) {
    // No room to encode now: it is parked or stays staged (without a store)
    // and is encoded at a later eviction, when memory may have been freed.
    // Its hash is the content's now: if it stays staged, the next eviction
    // tells a range rewritten since from one that was not (without it, an
    // unchanged one counted as changed again, towards staying resident).
    u->store.hash = hash;
    update_saved();
    return Settled::kNoMemory;
  }
  if (outcome != CompressOutcome::kStored) return Settled::kRetire;  // cannot hold the new content compressed
  adopt_encoding(*u, std::move(fresh), unchanged, start);
  return released ? Settled::kReleased : Settled::kStored;
}

// Unmaps the whole run `u` belongs to once each of its units is settled; a
// unit that must stay resident keeps the whole run mapped for good.
bool Runtime::evict(Allocation& a, const std::shared_ptr<Unit>& u) noexcept {
  const std::shared_ptr<StagedRun> run = u->run;
  if (!run) return false;
  const auto units = run->alive();
  const bool single = units.size() == 1 && units[0]->begin == run->begin && units[0]->end == run->end;
  bool released = false, stays = false;
  std::vector<Unit*> parked;  // parked by this eviction: undone if the run stays
  for (const auto& v : units) {
    if (v->dead || v->state != UnitState::kStaged || v->run != run) continue;
    switch (settle(v, single)) {
      case Settled::kStored:
        break;
      case Settled::kReleased:
        released = true;
        break;
      case Settled::kRetire:
        // The whole run becomes resident memory: the pages stay the data
        // (make_resident drops the parked copies of units parked above).
        retire(a, v);
        return true;
      case Settled::kNoMemory:
        // No room for its encoding: to host memory, so that its pages can
        // go (kept staged, an eviction that needs memory to free memory
        // left a fixed budget out of memory on a device it fits).
        if (park(*v)) {
          try {
            parked.push_back(v.get());
          } catch (...) {
            v->rescue.reset();  // cannot track it: as if it had not parked
            stays = true;
          }
        } else {
          stays = true;
        }
        break;
    }
  }
  if (stays) {
    // The run stays mapped (another unit could not be settled): its pages
    // stay the data, and a parked copy must not outlive them (restored at a
    // later staging it would bring back content rewritten since). Their
    // stores are gone: encoded again at a later eviction.
    for (Unit* p : parked) p->rescue.reset();
    return false;
  }
  for (Unit* p : parked) {
    stats_.parked.add();
    emit("park", p->begin, p->bytes());
  }
  unmap_settled(run, released);
  return true;
}

// Evicts a staged unit the device has no memory to encode by copying its
// pages to page-locked host memory: it is restored from there at its next
// staging and encoded at the eviction after it (as a range a handover
// rescued, handoff.cpp). Its uses completed (evictions wait for them, or
// hand the run over instead). Out-of-memory path only: a copy of its bytes
// over the bus and a wait for it, on the evicting thread. False (it stays
// staged) when the host memory is full or cannot be had. Counted by evict,
// which undoes it if the run stays mapped after all.
bool Runtime::park(Unit& u) noexcept {
  reap_kept();  // host memory decodes no longer read
  auto slot = parked_.take(u.bytes());
  if (!slot) return false;
  CUstream s = internal_.get();
  if (driver().base.cuMemcpyDtoHAsync(slot->host(), u.begin, u.bytes(), s) != CUDA_SUCCESS ||
      driver().base.cuStreamSynchronize(s) != CUDA_SUCCESS)
    return false;
  if (u.store.data) drop_store(u);  // stale: the copy is the data now
  u.rescue = std::move(slot);
  u.rescue_offset = 0;
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    log(LogLevel::kInfo, "no device memory to encode an evicted range: ranges parked in host memory until used again");
  return true;
}

// The end of an eviction: every unit of `run` is settled (its store holds its
// content); the pages go back (unless `released` already gave them).
void Runtime::unmap_settled(const std::shared_ptr<StagedRun>& run, bool released) noexcept {
  if (!released) {
    pool_.unmap(run->begin, run->memory);
    pool_.give_back(run->memory);
  }
  for (const auto& w : run->units) {
    const auto v = w.lock();
    if (!v || v->run != run) continue;
    v->run.reset();
    v->ready.reset();
    if (!v->dead) v->state = UnitState::kCompressed;
    std::erase(staged_, v);
  }
  ++memory_epoch_;
  stats_.staging_bytes.set(pool_.in_use_bytes());
  update_saved();
}

// Whether the run holding `u` may be unmapped now: no unit of it held by a
// call in progress, pinned by a graph or just used by another thread's last
// call (trailing_uses.cpp), and (unless the caller may wait) every use
// completed.
bool Runtime::run_evictable(const Unit& u, bool may_wait) const noexcept {
  if (!u.run) return false;
  for (const auto& w : u.run->units) {
    auto v = w.lock();
    if (!v || v->run != u.run) continue;
    if (v->in_flight > 0 || v->pins > 0) return false;
    if (held_elsewhere(*v)) return false;  // another thread may still queue a launch that reads it
    if ((!may_wait || behind_stall(*v)) && (!v->uses_done() || trailing_busy(*v))) return false;
  }
  return true;
}

// Whether staging a guess ahead may evict `u`: not if `u` is needed sooner
// than the guess (Belady: the guess would only push out what comes first).
bool Runtime::evictable_for_guess(const Unit& u, uint64_t only_after) const noexcept {
  return only_after == 0 || forecast_.calls_until_use(u.uses_seen) > only_after;
}

bool Runtime::evict_before(const Unit& a, const Unit& b) const noexcept {
  if (config_.evict_by_forecast && forecast_.regular()) {
    const uint64_t da = forecast_.calls_until_use(a.uses_seen), db = forecast_.calls_until_use(b.uses_seen);
    if (da != db) return da > db;
  }
  return a.lru_tick < b.lru_tick;
}

// The staged unit needed again last (evict_before) whose run may be evicted
// now (see run_evictable); ranges staged ahead and not used yet only if no
// other is.
std::shared_ptr<Unit> Runtime::lru_evictable(bool may_wait) const noexcept {
  std::shared_ptr<Unit> victim;
  for (int pass = 0; pass < 2 && !victim; ++pass) {
    for (const auto& u : staged_) {
      if (pass == 0 && u->prefetched) continue;
      if ((!victim || evict_before(*u, *victim)) && run_evictable(*u, may_wait)) victim = u;
    }
  }
  return victim;
}

// Under memory pressure, past a fixed staging budget (a launch that reaches
// more than the budget), or when the range changed at its last eviction
// (rewrite_policy.h), a staged range's store is given back once its decode
// completed: staging then costs (range - store) instead of the whole range,
// and an eviction encodes again (a changed range, as every weight in
// training, would have discarded the store anyway). Lossy float ranges keep
// their store (re-encoding a lossy decode need not reproduce it).
// A unit of a larger run gives its store up only when that costs no memory
// at eviction that keeping it would not: a changed range's old store is freed
// before its new encoding anyway, and a fixed budget's overflow is not a
// shortage of device memory (the unchanged units are encoded again while the
// run is still mapped). Short of memory, only a run of one unit does.
void Runtime::release_store_if_pressed(Unit& u, bool alone) noexcept {
  if (!u.store.data || CompressedStore::lossy_for(u.dtype, config_)) return;
  // Runs handed to the stager to settle, or held by it while it stages,
  // count as gone against the budget (enforce_budget): not a reason to give
  // stores up (counted, every staging with the stager on gave its store up
  // and every eviction encoded it again: inference 1.8 s/step in hooks).
  const bool over_budget =
      call_over_budget_ ||
      (config_.staging_bytes && pool_.in_use_bytes() > *config_.staging_bytes + deferred_bytes_ + held_bytes_);
  if (!u.changes.expect_change(generation_) && !over_budget) {
    if (!alone) return;
    size_t free = 0, total = 0;
    if (driver().base.cuMemGetInfo(&free, &total) != CUDA_SUCCESS || free > total / 8) return;
  }
  // The decode may still read the store: it is freed after it on the device
  // (the launching thread does not wait for the decode, which is queued
  // behind its stream's work), or, without the stream-ordered allocator,
  // once the host saw it complete.
  // Such stores count against the allowance for device work the host does
  // not wait for (device_work_allowance), so that a fixed budget still
  // bounds what staging holds in all.
  if (!event_done(u.ready)) {
    bool later = unwaited_bytes() + u.store.bytes <= device_work_allowance();
    if (later) {
      keep_store_copy(u, release_stream_.get());  // before the free, in stream order
      later = free_store_after(u.store.data, u.ready->get(), release_stream_.get());
    }
    if (later) {
      try {
        // Counted until the free itself ran, not only the decode: a stream
        // behind its host kept the memory after the decode completed
        // (NZSIM_LAZY=1, inference with a quarter of its weights staged:
        // 54 MB of stores freed on the device and not yet gone at the peak).
        SharedEvent freed = record_event(release_stream_.get());
        freed_later_.push_back({freed ? std::move(freed) : u.ready, u.store.bytes});
      } catch (...) {
      }
    } else if (!await_decode(u)) {
      return;  // queued behind a stream that waits for later work: kept (over the budget)
    }
  }
  // Nothing reads it now (unless freed later above): its memory back at once.
  give_store_up(u);
}

// A staged unit's store goes (no queued work reads it, or it was already
// handed to a stream to free): counted and traced as a store release.
void Runtime::give_store_up(Unit& u) noexcept {
  if (u.store.data) {
    keep_store_copy(u, return_stream_.get());
    // A copy reads the store (queued here, or on the release stream by a
    // caller whose free there failed): done before the store goes.
    if (u.store.host_copy.slot) host_copy_ready(u);
    free_store_now(u.store.data, return_stream_.get());
  }
  drop_store(u);
  stats_.store_releases.add();
  emit("store_release", u.begin, u.bytes());
}

// Device memory the host handed to work it does not wait for: stores given
// up while staged and freed on the device after their decode
// (release_store_if_pressed), and the pages of encode handovers not settled
// yet (given to the next run, or kept until settled when the incoming run
// cannot take them: exact handles of another size). The host does not wait
// for either, so they pile up while it runs ahead of the device: at most a
// quarter of a fixed staging budget, so that the budget still bounds what
// staging holds in all (issue 13's peaks: unbounded, stores freed later took
// lomo from 0.90x to 1.01x, and encode handovers adam + policy from 0.91x to
// 0.95x with the simulated device behind a loaded host); without a fixed
// budget, none (the host waits, as before).
size_t Runtime::device_work_allowance() const noexcept {
  return config_.staging_bytes ? *config_.staging_bytes / 4 : 0;
}

size_t Runtime::unwaited_bytes() noexcept {
  std::erase_if(freed_later_, [](const FreedLater& f) { return event_done(f.after); });
  reap_kept();
  size_t bytes = encode_handoff_bytes_;
  for (const auto& f : freed_later_) bytes += f.bytes;
  return bytes;
}

bool Runtime::enforce_budget(size_t incoming, bool may_wait, uint64_t only_after) noexcept {
  const detail::ContextBinding bound(context_);  // called from another device's context: work in ours
  const bool fixed = config_.staging_bytes.has_value();
  // Over a fixed budget, cached handles go first except one the incoming run
  // can reuse (no cuMemCreate when the same weights come round again).
  auto over = [&] {
    if (fixed) {
      // The arena (staging_pool.h): what is in use decides, and the run
      // wants one hole (in pieces it costs a mapping per piece; it gets
      // pieces only when nothing more can be evicted). Otherwise idle
      // handles count too (they are device memory), except one the
      // incoming run will take.
      // Runs handed to the stager to settle (defer_eviction) count as gone.
      const size_t budget = *config_.staging_bytes + deferred_bytes_ + held_bytes_;
      if (pool_.arena())
        return pool_.in_use_bytes() + incoming > budget || (incoming > 0 && !pool_.has_cached(incoming));
      const size_t reused = incoming > 0 && pool_.has_cached(incoming) ? incoming : 0;
      return pool_.physical_bytes() + incoming - reused > budget;
    }
    size_t free = 0, total = 0;
    if (driver().base.cuMemGetInfo(&free, &total) != CUDA_SUCCESS) return false;
    stats_.device_used_peak.raise_to(total - free);
    if (free < total / 8) reserve_for_pressure();
    return free < incoming + total / 8;
  };
  auto trim_cache = [&] {
    if (!fixed) return pool_.trim(0);
    const size_t budget = *config_.staging_bytes + deferred_bytes_ + held_bytes_,
                 used = pool_.in_use_bytes() + incoming;
    size_t keep = used < budget ? budget - used : 0;
    // acquire will take it; a run larger than the budget keeps nothing (the
    // budget is exceeded anyway: the least memory wins).
    if (incoming > 0 && incoming <= budget && pool_.has_cached(incoming)) keep += incoming;
    return pool_.trim(keep, incoming);
  };
  if (!over()) return true;
  // Before evicting (a recompression allocates its new store): only the
  // handle the incoming run reuses stays cached.
  trim_cache();
  // Adaptive budgets never wait: they only take back what is already idle.
  if (!fixed) may_wait = false;
  bool handed_for_incoming = false;  // a handover gave back a handle of the incoming run's size
  while (over()) {
    // The least recently used staged range that no queued launch still holds.
    // Prefetched ranges not used yet go last: they are about to be needed
    // (unless the guess was wrong, so they are not protected for ever).
    // A run seen unchanged before is handed over on the device (handoff.h)
    // whether or not its uses completed: no host wait for them or its hash.
    // With exact handles (no arena: the driver maps whole handles only) a
    // handover makes room only for a run of its size: the handle it gives
    // back is what that run maps next. Such a victim goes first; one of
    // another size is evicted on the host, so the budget holds.
    auto hand_over_fits = [&](const Unit& u) {
      if (!handoff_eligible(u) && !encode_handoff_eligible(u)) return false;
      if (pool_.arena()) return true;
      return !handed_for_incoming && incoming > 0 && u.run->memory.size() == 1 && u.run->memory.front().whole() &&
             u.run->memory.front().bytes() == incoming;
    };
    // A handover first: no host wait, and its handle is the incoming run's.
    // (Passed over for a range needed later, with exact handles it made the
    // host wait for the device: hook time 44 -> 446 ms/step at inference
    // 256/32, staged ahead 90 -> 76 %.)
    std::shared_ptr<Unit> victim;
    if (!pool_.arena()) {
      for (auto& u : staged_)
        if (!u->prefetched && (!victim || evict_before(*u, *victim)) && hand_over_fits(*u) &&
            evictable_for_guess(*u, only_after))
          victim = u;
    }
    // (Ranges whose uses completed first was tried with the forecast, which
    // often picks the range just used: more VMM calls and decode launches in
    // training, no gain at inference; docs/RESULTS.md §4.9.6.)
    for (int pass = 0; pass < 2 && !victim; ++pass) {
      for (auto& u : staged_) {
        if (pass == 0 && u->prefetched) continue;
        if ((!victim || evict_before(*u, *victim)) && evictable_for_guess(*u, only_after)) {
          if (run_evictable(*u, may_wait) || hand_over_fits(*u)) victim = u;
        }
      }
    }
    if (!victim) break;
    victim->prefetched = false;
    // Unchanged before: the device checks it is still; rewritten: the device encodes it.
    if (hand_over_fits(*victim) && (handoff_eligible(*victim) ? hand_over(victim) : hand_over_encoding(victim))) {
      // Without the arena its handle is the incoming run's (acquire takes
      // it): one is enough, the rest of any shortfall is evicted on the host.
      handed_for_incoming = !pool_.arena();
      trim_cache();
      continue;
    }
    // A rewritten run whose handle the incoming run cannot take (exact
    // handles of another size): still encoded on the device, its pages kept
    // by the handover until settled (within the allowance, as every encode
    // handover: hand_over_encoding).
    if (!pool_.arena() && encode_handoff_eligible(*victim) && hand_over_encoding(victim, true)) {
      trim_cache();
      continue;
    }
    if (!run_evictable(*victim, may_wait)) break;  // no room to hand it over, and no waiting
    if (defer_eviction(victim)) continue;  // the stager hashes and encodes it, off this thread
    if (!wait_run_uses(victim)) continue;  // its stream is blocked: passed over (run_evictable) from now on
    Allocation* a = allocation_containing(victim->begin);
    if (a == nullptr || !evict(*a, victim)) break;
    trim_cache();  // the victim's handle goes at once (the next eviction may allocate a store)
  }
  trim_cache();
  // Exact handles (no arena): the handles of runs handed over stay mapped at
  // their old addresses until their guard settled, and one of another size
  // than the incoming run's is of no use to it: a new handle would be made
  // beside them, past the budget (lora with declared extents, 4 MiB: a
  // 2-unit run created beside two 1-unit handovers' handles, 0.862x against
  // 0.819x from page handles; RESULTS §4.9.23). A caller that may wait lets
  // them settle first, so that their handles can go.
  if (fixed && may_wait && incoming > 0 && !pool_.arena() && !handoffs_.empty() && over()) {
    reap_handoffs(true);
    trim_cache();
  }
  if (!fixed) stats_.staging_budget.set(pool_.in_use_bytes());
  return !over();
}

size_t Runtime::evict_all(bool wait, bool trim) noexcept {
  const detail::ContextBinding bound(context_);  // called from another device's context: work in ours
  size_t freed = trim ? pool_.trim(0) : 0;
  auto victims = staged_;
  for (auto& u : victims) {
    if (u->state != UnitState::kStaged || !u->run || !run_evictable(*u, wait)) continue;
    if (!wait_run_uses(u)) continue;  // its stream is blocked: left staged
    const size_t run_bytes = u->run->bytes();
    Allocation* a = allocation_containing(u->begin);
    if (a != nullptr && evict(*a, u)) freed += run_bytes;
  }
  if (trim) freed += pool_.trim(0);
  return freed;
}

size_t Runtime::evict_idle() noexcept {
  std::lock_guard lock(mutex_);
  RelaxedCaptureScope relaxed;
  if (!setup_ok_) return 0;
  const size_t freed = evict_all(true, /*trim=*/false);  // the handles stay cached for the next staging
  restore_due_stores();
  return freed;
}

bool Runtime::debug_store_of(CUdeviceptr p, CUdeviceptr& store, size_t& bytes) noexcept {
  std::lock_guard lock(mutex_);
  auto* e = RangeMap<TagExtent>::find(*tracked_.snapshot(), p);
  if (e == nullptr) return false;
  for (const auto& u : *e->value->all) {
    if (p >= u->begin && p < u->end && u->store.data) {
      store = u->store.data.get();
      bytes = u->store.bytes;
      return true;
    }
  }
  return false;
}

bool Runtime::debug_unit_of(CUdeviceptr p, UnitState& state, int& pins) noexcept {
  std::lock_guard lock(mutex_);
  auto* e = RangeMap<TagExtent>::find(*tracked_.snapshot(), p);
  if (e == nullptr) return false;
  for (const auto& u : *e->value->all) {
    if (p >= u->begin && p < u->end) {
      state = u->state;
      pins = u->pins;
      return true;
    }
  }
  return false;
}

bool Runtime::on_out_of_memory(size_t bytes_wanted) noexcept {
  const uint64_t epoch_before = memory_epoch_;
  compress_pending(true);
  std::lock_guard lock(mutex_);
  RelaxedCaptureScope relaxed;
  if (!setup_ok_) return false;
  const size_t freed = reclaim_device_memory(bytes_wanted, epoch_before);
  emit("oom", 0, bytes_wanted, fmt::format("\"freed\":{}", freed));
  return freed > 0;
}

size_t Runtime::reclaim_device_memory(size_t bytes_wanted, uint64_t epoch_before) noexcept {
  reserve_for_pressure();
  // Evictions handed to the stager (defer_eviction) hold memory until settled.
  if (!to_settle_.empty()) wait_for_stager_locked();
  size_t freed = evict_all(true) + (memory_epoch_ != epoch_before ? bytes_wanted : 0);
  // Stores freed in stream order come back to the device only once their
  // stream reached the frees and the pool was synchronized (staging_runs.cpp).
  size_t free_before = 0, free_after = 0, total = 0;
  if (driver().base.cuMemGetInfo(&free_before, &total) == CUDA_SUCCESS && reclaim_stream_ordered_frees() &&
      driver().base.cuMemGetInfo(&free_after, &total) == CUDA_SUCCESS && free_after > free_before)
    freed += free_after - free_before;
  // The last resorts a staging takes too (acquire_runs): stores of staged
  // ranges, then the encode reserve.
  // In that order, the reserve only if the stores freed nothing.
  for (int step = 0; step < 2 && freed == 0; ++step) {
    if (driver().base.cuMemGetInfo(&free_before, &total) != CUDA_SUCCESS) break;
    const bool gave = step == 0 ? give_up_staged_stores() : give_up_reserve();
    if (gave && driver().base.cuMemGetInfo(&free_after, &total) == CUDA_SUCCESS)
      freed = free_after > free_before ? free_after - free_before : 1;
  }
  // Still short of what is wanted: stores no call is using go to page-locked
  // host memory, as a staging short of memory does (offload_stores). Without
  // it the program's own allocation failed on a device where it would fit
  // (lomo on 60 MiB: a 20 MiB segment refused with 17 MB free and 41 MB of
  // stores, while 56 MiB, where stagings had offloaded them, completed).
  size_t free_now = 0;
  if (driver().base.cuMemGetInfo(&free_now, &total) == CUDA_SUCCESS && free_now < bytes_wanted &&
      offload_stores(bytes_wanted - free_now)) {
    reclaim_stream_ordered_frees();
    if (driver().base.cuMemGetInfo(&free_after, &total) == CUDA_SUCCESS && free_after > free_now)
      freed += free_after - free_now;
  }
  return freed;
}

}  // namespace nz::rt
