// tagging.cpp: tags (HtoD copies, nz_tag/nz_untag) → units, and the
// compression of units from safe points.
#include "runtime/runtime.h"

#include <algorithm>
#include <cstring>

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

// ---- tagging ---------------------------------------------------------------------------

void Runtime::tag_locked(Allocation& a, CUdeviceptr begin, CUdeviceptr end, int dtype, SharedEvent filled) noexcept {
  end = std::min<CUdeviceptr>(end, a.base + a.bytes);
  if (begin >= end || a.leaving) return;  // shared with other processes: never compressed (ipc_export.cpp)
  AddressWindow merged;
  try {
    const uint64_t before = a.tags.tagged_bytes();
    merged = a.tags.add(begin, end, dtype);
    const uint64_t after = a.tags.tagged_bytes();
    stats_.bytes_tagged.add(after - before);
    std::erase_if(a.recent_fills, [](const SharedEvent& e) { return event_done(e); });
    if (filled) a.recent_fills.push_back(std::move(filled));
  } catch (...) {
    return;
  }
  if (trace_.enabled()) emit("tag", begin, end - begin, fmt::format("\"dtype\":{}", dtype));
  replan(a, merged, true);
}

bool Runtime::compress_when_filled() const noexcept {
  return config_.long_lived_uses == 0 || config_.staging_bytes.has_value();
}

void Runtime::make_pending(const std::shared_ptr<Unit>& u) noexcept {
  u->long_lived = true;
  if (std::find(pending_.begin(), pending_.end(), u) != pending_.end()) return;
  try {
    pending_.push_back(u);
    pending_count_.store(pending_.size(), std::memory_order_relaxed);
  } catch (...) {
  }
}

// After a launch used `u`: one more iteration of use, unless it was used in
// this iteration already.
void Runtime::note_iteration_use(const std::shared_ptr<Unit>& u) noexcept {
  launched_in_generation_ = true;
  if (u->long_lived || u->dead || !u->tracked || u->state != UnitState::kResident) return;
  if (u->last_use_generation == generation_) return;
  u->last_use_generation = generation_;
  if (++u->use_generations >= config_.long_lived_uses) make_pending(u);
}

// Only the pages near the change can gain or lose a unit: plan that window
// (widened to the units already overlapping it) and reconcile it, so that a
// loader's thousands of small copies cost O(log n) each, not O(n).
void Runtime::replan(Allocation& a, AddressWindow w, bool refill) noexcept {
  const size_t page = vmm_.page_size();
  const CUdeviceptr limit = a.base + a.bytes;
  w.begin = a.base + (std::max(w.begin, a.base) - a.base) / page * page;
  w.end = std::min<CUdeviceptr>(limit, a.base + (std::max(w.end, a.base) - a.base + page - 1) / page * page);
  if (w.begin >= w.end) return;
  settle_handoffs_of(a);  // units may be remade or made resident: no old mapping may remain
  auto first = a.units.upper_bound(w.begin);
  if (first != a.units.begin() && std::prev(first)->second->end > w.begin) w.begin = std::prev(first)->first;
  auto last = a.units.lower_bound(w.end);
  if (last != a.units.begin() && std::prev(last)->second->end > w.end) w.end = std::prev(last)->second->end;
  std::vector<PlannedUnit> plan;
  std::vector<std::shared_ptr<Unit>> stale;
  try {
    plan = a.tags.plan(a.base, a.bytes, page, kMaxUnitBytes, w);
    // Units in the window that no longer match the plan go back to resident memory.
    for (auto it = a.units.lower_bound(w.begin); it != a.units.end() && it->first < w.end; ++it) {
      const auto& u = it->second;
      const bool kept = std::any_of(plan.begin(), plan.end(),
                                    [&](const PlannedUnit& p) { return p.begin == u->begin && p.end == u->end; });
      if (!kept) stale.push_back(u);
    }
  } catch (...) {
    return;
  }
  bool changed = !stale.empty();
  for (auto& u : stale) retire(a, u);
  for (const PlannedUnit& p : plan) {
    auto it = a.units.find(p.begin);
    if (it != a.units.end()) {
      // Refilled by a new copy: the producers to wait for before compressing;
      // re-tagged with a dtype: used from the next compression on.
      if (it->second->state == UnitState::kResident) {
        it->second->filled = a.recent_fills;
        if (refill && !it->second->long_lived) {
          it->second->use_generations = 0;  // rewritten: its life starts again
          it->second->last_use_generation = ~uint64_t{0};
          it->second->refilled = true;
        }
      }
      if (it->second->dtype != p.dtype && it->second->state != UnitState::kResident) {
        it->second->recode = true;  // stored with the old dtype: re-encode at its next eviction
      }
      it->second->dtype = p.dtype;
      continue;
    }
    auto u = std::make_shared<Unit>();
    u->begin = p.begin;
    u->end = p.end;
    u->dtype = p.dtype;
    u->allocation = a.base;
    u->filled = a.recent_fills;
    u->fill_generation = generation_;
    // Inside a buffer NCCL holds registered: never compressed while it does.
    if (!external_pins_.empty()) u->pins = external_pins_over(u->begin, u->end);
    // Memory a live graph reads (through a unit retired since): pinned as
    // that unit was.
    try {
      graph_pins_.adopt(u);
    } catch (...) {
      u->pins += 1;  // no memory to record the holder: pinned for good, the safe side
    }
    try {
      a.units.emplace(p.begin, u);
      u->tracked = true;
    } catch (...) {
      continue;
    }
    if (compress_when_filled()) make_pending(u);
    changed = true;
    stats_.bytes_compressible.add(u->bytes());
    units_tagged_.fetch_add(1, std::memory_order_relaxed);
    emit("unit", u->begin, u->bytes());
  }
  if (changed) republish(a);
}

// The spans republish clusters, in address order, none overlapping: the
// tags and what nz_untag took out of them (a tensor untagged in its middle
// is still read across; adjacent spans stay apart, as adjacent tags do).
std::vector<std::pair<CUdeviceptr, CUdeviceptr>> Runtime::reach_spans(const Allocation& a) {
  std::vector<std::pair<CUdeviceptr, CUdeviceptr>> spans;
  spans.reserve(a.tags.count() + a.untagged.count());
  a.tags.for_each([&](CUdeviceptr b, CUdeviceptr e, int) { spans.emplace_back(b, e); });
  if (a.untagged.empty()) return spans;
  a.untagged.for_each([&](CUdeviceptr b, CUdeviceptr e, int) { spans.emplace_back(b, e); });
  std::sort(spans.begin(), spans.end());
  // A range tagged again after its untag is in both: one span.
  std::vector<std::pair<CUdeviceptr, CUdeviceptr>> merged;
  merged.reserve(spans.size());
  for (const auto& s : spans) {
    if (!merged.empty() && s.first < merged.back().second) merged.back().second = std::max(merged.back().second, s.second);
    else merged.push_back(s);
  }
  return merged;
}

// A kernel may read anything reachable from its pointer: a tensor loaded by
// several copies (adjacent tags), an FSDP-style flat parameter read from its
// base across the alignment padding between parameters, a caching-allocator
// block reused from an offset before a freed weight, a one-past-the-end
// pointer. Tags less than kClusterGap apart form a cluster (the driver API
// cannot tell a tensor loaded in pieces from adjacent tensors), and the hot
// path maps:
//   * an address in a tag (or the padding after it) to the units of that tag
//     and of every later tag of its cluster: kernels read forward from the
//     pointers they are given;
//   * a range nz_untag took out of a tag like a tag (reach_spans): resident
//     now, but a kernel reading its tensor whole reads across it;
//   * the first byte of a tag after the first also to the tag before it, and
//     the byte after a cluster to its last tag (one-past-the-end pointers);
//   * everything else in the allocation (untagged memory, e.g. a block reused
//     over compressed pages) to every unit that ends after the address, read
//     forward like a tag: a block that starts in untagged memory and runs
//     over compressed pages stages them, but an activation that a caching
//     allocator placed after a segment's weights (generation's odd sizes fit
//     the tails of the 20 MiB weight segments) no longer stages every weight
//     of the segment at each of its launches (on the H200 that made a 64 MiB
//     budget restage ~10 units per launch, 3.6 s per generated token, RESULTS
//     §6.6); one byte past the allocation's end (the VA reservation keeps a
//     free page there) to every unit, in doubt (a reverse iterator's end).
// Cost: adjacent separate tensors (a caching allocator's 20 MiB segment of
// 1-10 MiB weights) are staged from the touched one to the segment's end
// (docs/RUNTIME.md, "Reach").
void Runtime::republish(Allocation& a) noexcept {
  constexpr CUdeviceptr kClusterGap = 64 << 10;
  using Units = std::vector<std::shared_ptr<Unit>>;
  using Entry = RangeMap<TagExtent>::Entry;
  try {
    auto everything = std::make_shared<Units>();
    for (auto& [begin, u] : a.units) {
      if (u->tracked) everything->push_back(u);
    }
    a.largest_extent = 0;
    for (const auto& u : *everything) a.largest_extent += u->bytes();
    std::vector<Entry> entries;
    if (!everything->empty()) {
      const CUdeviceptr limit = a.base + a.bytes + 1;
      const auto whole = std::make_shared<TagExtent>(TagExtent{everything, 0});
      CUdeviceptr covered = a.base;
      auto push = [&](CUdeviceptr b, CUdeviceptr e, std::shared_ptr<TagExtent> x) {
        if (b < e && !x->empty()) entries.push_back({b, e, std::move(x)});
      };
      // Untagged [b, e): each address to the units that end after it, in
      // pieces split at unit boundaries (a unit may hold a tag's last bytes
      // and untagged ones after them: addresses in it reach it).
      auto push_untagged = [&](CUdeviceptr b, CUdeviceptr e) {
        size_t i = 0;
        while (b < e) {
          while (i < everything->size() && (*everything)[i]->end <= b) ++i;
          if (i == everything->size()) return;  // nothing after: reaches nothing
          const Unit& u = *(*everything)[i];
          const CUdeviceptr piece_end = std::min(e, u.begin > b ? u.begin : u.end);
          push(b, piece_end, i == 0 ? whole : std::make_shared<TagExtent>(TagExtent{everything, i}));
          b = piece_end;
        }
      };
      // The tags of one cluster: begins and ends.
      std::vector<std::pair<CUdeviceptr, CUdeviceptr>> cluster;
      auto flush_cluster = [&] {
        if (cluster.empty()) return;
        // (The byte past the allocation is left to `whole` below even when
        // it is also the byte after this cluster: a reverse iterator's end
        // over the whole segment reads back across every tag.)
        const CUdeviceptr cb = cluster.front().first, ce = std::min(cluster.back().second + 1, limit - 1);
        auto units = std::make_shared<Units>();
        for (const auto& u : *everything) {
          if (u->end > cb && u->begin < ce) units->push_back(u);
        }
        push_untagged(covered, cb);  // untagged memory before the cluster
        auto first_unit = [&](CUdeviceptr tag_begin) {
          size_t i = 0;
          while (i < units->size() && (*units)[i]->end <= tag_begin) ++i;
          return i;
        };
        // With NEUZIP_TAG_EXTENTS=1, a tag that is exactly a declared
        // tensor reaches its own units only (those overlapping it). Only
        // exactly: a tag grown by a later copy (a larger tensor loaded over
        // it) or cut by nz_untag (a tensor still read whole) is no longer
        // the tensor declared, and reaches as any tag does.
        auto last_unit = [&](CUdeviceptr tag_begin, CUdeviceptr tag_end, size_t first) -> size_t {
          if (!config_.tag_extents) return SIZE_MAX;
          const AddressWindow d = a.declared.tag_at(tag_begin);
          if (d.begin != tag_begin || d.end != tag_end) return SIZE_MAX;
          size_t i = first;
          while (i < units->size() && (*units)[i]->begin < tag_end) ++i;
          return i;
        };
        size_t previous = 0, previous_last = SIZE_MAX;
        for (size_t t = 0; t < cluster.size(); ++t) {
          const CUdeviceptr b = cluster[t].first;
          const CUdeviceptr e = t + 1 < cluster.size() ? cluster[t + 1].first : ce;
          const size_t first = first_unit(b);
          const size_t last = last_unit(b, cluster[t].second, first);
          CUdeviceptr from = b;
          if (t > 0) {  // the end of the tag before, or the start of this one
            push(b, b + 1, std::make_shared<TagExtent>(TagExtent{units, previous, std::max(previous_last, last)}));
            from = b + 1;
          }
          push(from, e, std::make_shared<TagExtent>(TagExtent{units, first, last}));
          previous = first;
          previous_last = last;
        }
        covered = ce;
        cluster.clear();
      };
      for (const auto& [b, e] : reach_spans(a)) {
        if (!cluster.empty() && b > cluster.back().second + kClusterGap) flush_cluster();
        cluster.emplace_back(b, e);
      }
      flush_cluster();
      push_untagged(covered, limit - 1);
      push(std::max(covered, limit - 1), limit, whole);  // an end pointer may be read backwards: all of it
    }
    tracked_.replace(a.base, a.base + a.bytes + 1, std::move(entries));
  } catch (...) {
    log(LogLevel::kError, "out of memory publishing ranges");
  }
}

void Runtime::untrack(Allocation& a, const std::shared_ptr<Unit>& u) noexcept {
  if (!u->tracked) return;
  u->tracked = false;
  republish(a);
  std::erase(pending_, u);
  pending_count_.store(pending_.size(), std::memory_order_relaxed);
}

// The range becomes plain resident memory for good (untagged, or changed too often).
void Runtime::retire(Allocation& a, const std::shared_ptr<Unit>& u) noexcept {
  const auto& api = driver().base;
  if (u->state == UnitState::kCompressed) {
    // Decode into fresh memory that becomes its permanent backing.
    if (stage(u, internal_.get(), false) != CUDA_SUCCESS) {
      log(LogLevel::kError, "cannot restore range {} to resident memory; it stays compressed", hex(u->begin));
      return;
    }
    // Work queued later on other streams must find the data decoded.
    api.cuStreamSynchronize(internal_.get());
  }
  if (u->state == UnitState::kStaged && u->run) {
    // The staging pages stay mapped where they are and become the backing of
    // the whole run (a mapping cannot be split): its other units become
    // resident memory too (make_resident waits for their decodes).
    const std::shared_ptr<StagedRun> run = u->run;
    pool_.detach(run->memory);
    stats_.staging_bytes.set(pool_.in_use_bytes());
    try {
      a.permanent[run->begin] = {run->bytes(), std::move(run->memory)};
    } catch (...) {
    }
    for (const auto& v : run->alive()) {
      if (v->run != run) continue;
      v->run.reset();
      stats_.released_bytes.sub(v->bytes());
      stats_.bytes_original_compressed.sub(v->bytes());
      stats_.bytes_compressed.sub(v->store.bytes);
      std::erase(staged_, v);
      if (v != u) make_resident(a, v);
    }
  }
  make_resident(a, u);
}

// Bookkeeping of a unit whose memory is now plain resident memory for good.
void Runtime::make_resident(Allocation& a, const std::shared_ptr<Unit>& u) noexcept {
  if (u->dead) return;
  untrack(a, u);
  stats_.bytes_compressible.sub(u->bytes());
  // Staged moments ago (untagged, or retired by a replan, right after a
  // launch or a guess), its decode may still be queued. Untracked from here,
  // no launch would wait for it, and its store (or the host copy it reads)
  // would go at once: the allocator could hand that memory out before the
  // decode ran (a checksum trap or an illegal address, sticky in the
  // program's context). So the host waits for it, once (untag and replans
  // are rare).
  if (u->ready && !event_done(u->ready)) driver().base.cuEventSynchronize(u->ready->get());
  u->store = StoredRange{};
  u->rescue.reset();  // its own pages hold it (a parked or rescued copy must not outlive them)
  u->state = UnitState::kResident;
  u->dead = true;
  a.units.erase(u->begin);
  emit("resident", u->begin, u->bytes());
}

int Runtime::tag(CUdeviceptr ptr, size_t bytes, int dtype) noexcept {
  if (bytes == 0 || dtype < NZ_TAG_BYTES || dtype > NZ_TAG_FP32 || ptr + bytes < ptr) return NZ_RT_INVALID;
  std::lock_guard lock(mutex_);
  RelaxedCaptureScope relaxed;
  Allocation* a = allocation_containing(ptr);
  if (a == nullptr) return NZ_RT_NOT_MANAGED;
  if (stager_busy_ > 0 || !to_settle_.empty()) wait_for_stager_locked();  // as untag: units may be remade
  // The content is whatever work already queued writes: wait for all of it
  // (the legacy stream orders after every blocking stream).
  try {
    a->declared.add(ptr, std::min<CUdeviceptr>(ptr + bytes, a->base + a->bytes), dtype);
  } catch (...) {
  }
  tag_locked(*a, ptr, ptr + bytes, dtype, record_event(CU_STREAM_LEGACY));
  if (config_.tag_extents) republish(*a);  // the tag may now reach less (its units may be unchanged)
  // Declared by the program: a weight, whatever its age.
  for (auto it = a->units.lower_bound(ptr > vmm_.page_size() ? ptr - vmm_.page_size() : 0);
       it != a->units.end() && it->first < ptr + bytes; ++it) {
    if (it->second->end > ptr && it->second->state == UnitState::kResident) make_pending(it->second);
  }
  recode_declared(*a);
  return NZ_RT_OK;
}

// A declaration usually follows the load (nz_tag after model.to('cuda')), when
// the HtoD copies have already been compressed as untyped bytes. Re-encode
// those units now, one at a time (decode on the internal stream, then the
// eviction path encodes with the declared dtype), so that a lossy mode
// applies from the first use instead of from each unit's first eviction, and
// the footprint shrinks right away.
void Runtime::recode_declared(Allocation& a) noexcept {
  if (!setup_ok_) return;
  std::vector<std::shared_ptr<Unit>> work;
  try {
    for (auto& [begin, u] : a.units) {
      if (u->recode && u->state == UnitState::kCompressed && u->pins == 0 && u->in_flight == 0) work.push_back(u);
    }
  } catch (...) {
    return;
  }
  for (auto& u : work) {
    if (u->dead || u->state != UnitState::kCompressed) continue;
    if (stage(u, internal_.get(), false) != CUDA_SUCCESS) continue;  // stays marked: recoded at its eviction
    driver().base.cuStreamSynchronize(internal_.get());
    try {
      staged_.push_back(u);
    } catch (...) {
    }
    u->lru_tick = ++tick_;
    evict(a, u);
  }
}

int Runtime::untag(CUdeviceptr ptr, size_t bytes) noexcept {
  if (bytes == 0 || ptr + bytes < ptr) return NZ_RT_INVALID;
  std::lock_guard lock(mutex_);
  RelaxedCaptureScope relaxed;
  Allocation* a = allocation_containing(ptr);
  if (a == nullptr) return NZ_RT_NOT_MANAGED;
  // The look-ahead stager may be mapping or settling units of it with the
  // lock dropped: a unit made resident under it had its pages unmapped by
  // the settling afterwards (the next hash of them met unmapped pages).
  if (stager_busy_ > 0 || !to_settle_.empty()) wait_for_stager_locked();
  const CUdeviceptr end = std::min<CUdeviceptr>(ptr + bytes, a->base + a->bytes);
  const uint64_t before = a->tags.tagged_bytes();
  // A kernel may still read across what was tagged here (a tensor untagged
  // in its middle, read whole from its base): it keeps joining the tags
  // around it into one reach (republish).
  try {
    std::vector<std::pair<CUdeviceptr, CUdeviceptr>> was_tagged;
    a->tags.for_each([&](CUdeviceptr b, CUdeviceptr e, int) {
      if (b < end && e > ptr) was_tagged.emplace_back(std::max(b, ptr), std::min(e, end));
    });
    for (const auto& [b, e] : was_tagged) a->untagged.add(b, e, NZ_TAG_BYTES);
  } catch (...) {
    log(LogLevel::kError, "out of memory recording an untagged range; reads across it may miss ranges after it");
  }
  a->tags.remove(ptr, end);
  stats_.bytes_tagged.sub(before - a->tags.tagged_bytes());
  emit("untag", ptr, end - ptr);
  replan(*a, AddressWindow{ptr, end}, false);
  return NZ_RT_OK;
}

// ---- compression --------------------------------------------------------------------

void Runtime::compress_pending(bool wait_for_producers) noexcept {
  if (!wait_for_producers && pending_count_.load(std::memory_order_relaxed) == 0) return;
  std::unique_lock lock(mutex_, std::defer_lock);
  if (wait_for_producers) lock.lock();
  else if (!lock.try_lock()) return;
  if (!setup_ok_) return;
  RelaxedCaptureScope relaxed;
  if (wait_for_producers) {
    // Forced (nz_flush, memory short): ranges not yet proven long-lived too.
    for (auto& [base, a] : allocations_) {
      for (auto& [begin, u] : a->units) {
        if (!u->long_lived && u->tracked && u->state == UnitState::kResident) make_pending(u);
      }
    }
  }
  compress_pending_locked(wait_for_producers);
}

// The program asks how much memory is free, usually to size a cache (vLLM's
// KV cache, after loading and a profiling pass): what it loaded should count
// compressed by then. Ranges filled while loading (the first iteration) that
// were never refilled are compressed now; recycled buffers are not.
void Runtime::compress_loaded() noexcept {
  {
    std::lock_guard lock(mutex_);
    if (!setup_ok_) return;
    bool any = false;
    for (auto& [base, a] : allocations_) {
      for (auto& [begin, u] : a->units) {
        if (!u->long_lived && !u->refilled && u->fill_generation == 0 && u->tracked &&
            u->state == UnitState::kResident) {
          make_pending(u);
          any = true;
        }
      }
    }
    if (!any) return;
  }
  compress_pending(true);
}

void Runtime::compress_pending_locked(bool wait_for_producers) noexcept {
  const detail::ContextBinding bound(context_);  // called from another device's context: work in ours
  // Every compression starts here: NEUZIP_OBSERVE stops it and nothing else,
  // so nothing is ever staged, evicted or reserved either.
  if (config_.observe) return;
  auto work = pending_;
  for (auto& u : work) {
    if (u->dead || u->state != UnitState::kResident || u->in_flight > 0 || u->pins > 0) continue;
    if (u->no_memory_epoch == memory_epoch_) continue;  // nothing was freed since it found no memory
    if (held_elsewhere(*u)) continue;  // another thread may still queue a launch that reads it
    // Unforced, from a hook of this thread (at the start of each launch and
    // copy): the call being made may be the one that reads it through the
    // pointers its last call wrote, and is not queued yet (a seal now would
    // come before it). Forced compressions (nz_flush, memory short) seal.
    if (!wait_for_producers && opened_here_recently(*u)) continue;
    seal_open_use(*u);  // launches after its last tracked call may read it through device-built pointers
    if (wait_for_producers) {
      // Bounded (patient_wait.cpp): a use may sit behind a stream that waits
      // for the program's later work.
      if (behind_stall(*u)) continue;
      std::vector<SharedEvent> pending;
      try {
        pending.insert(pending.end(), u->filled.begin(), u->filled.end());
        pending.insert(pending.end(), u->uses.begin(), u->uses.end());
      } catch (...) {
        continue;
      }
      if (!await_events(pending, TraceClock::now())) {
        mark_stalled_locked({u});
        continue;
      }
      u->clear_uses();
    }
    if (!std::all_of(u->filled.begin(), u->filled.end(), event_done) || !u->uses_done()) continue;
    Allocation* a = allocation_containing(u->begin);
    if (a == nullptr) continue;
    compress_unit(*a, u);
  }
}

void Runtime::compress_unit(Allocation& a, const std::shared_ptr<Unit>& u) noexcept {
  std::erase(pending_, u);
  pending_count_.store(pending_.size(), std::memory_order_relaxed);
  u->filled.clear();
  const size_t page = vmm_.page_size();
  const size_t first = (u->begin - a.base) / page, count = u->bytes() / page;
  // Which memory backs it now: its own pages, or a permanent staging handle
  // (neither for memory shared with other processes: no pages at all).
  const bool own_pages = first + count <= a.pages.size() &&
                         std::all_of(a.pages.begin() + first, a.pages.begin() + first + count,
                                     [](CUmemGenericAllocationHandle h) { return h != 0; });
  auto permanent = a.permanent.find(u->begin);
  const bool own_handle = permanent != a.permanent.end() && permanent->second.first == u->bytes();
  StoredRange stored;
  const auto start = TraceClock::now();
  const CompressOutcome outcome =
      (own_pages || own_handle) ? store_->compress(u->begin, u->bytes(), u->dtype, config_, stored)
                                : CompressOutcome::kFailed;
  if (outcome == CompressOutcome::kNoMemory && ++u->compress_attempts < kCompressAttempts) {
    // Memory may be freed later (evictions, frees): stay pending until then.
    u->no_memory_epoch = memory_epoch_;
    try {
      pending_.push_back(u);
      pending_count_.store(pending_.size(), std::memory_order_relaxed);
      evict_all(false);
      return;
    } catch (...) {
    }
  }
  if (outcome != CompressOutcome::kStored) {
    // Poor ratio, no memory for the store, or an odd backing: leave it resident.
    u->want_compress = false;
    untrack(a, u);
    emit("keep_resident", u->begin, u->bytes(),
                fmt::format("\"reason\":\"{}\"", outcome == CompressOutcome::kPoorRatio ? "ratio"
                                                 : outcome == CompressOutcome::kNoMemory ? "memory"
                                                                                          : "failed"));
    log(LogLevel::kDebug, "range {} ({} bytes) stays resident", hex(u->begin), u->bytes());
    return;
  }
  // compress() waited for the internal stream, and no launch touched the
  // range since its last use completed: releasing the pages is safe.
  if (own_pages) {
    vmm_.release_pages(a.base, a.pages, first, count);
  } else {
    pool_.unmap(u->begin, permanent->second.second);
    pool_.release(permanent->second.second);
    a.permanent.erase(permanent);
  }
  u->store = std::move(stored);
  u->encoded_bytes = u->store.bytes;
  u->encoded_dtype = u->store.header.size() > 6 ? u->store.header[6] : 0;
  u->state = UnitState::kCompressed;
  if (config_.corrupt_stores && u->store.bytes > 64) {
    // Fault injection: damage the payload's tail so the decode's checksum fails.
    static const uint8_t junk[64] = {0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5, 0x5a, 0xa5};
    driver().base.cuMemcpyHtoD(u->store.data.get() + u->store.bytes - 64, junk, sizeof junk);
  }
  ++memory_epoch_;
  stats_.released_bytes.add(u->bytes());
  stats_.bytes_original_compressed.add(u->bytes());
  stats_.bytes_compressed.add(u->store.bytes);
  update_saved();
  emit_timed("compress", u->begin, u->bytes(), start, fmt::format("\"compressed\":{}", u->store.bytes));
  log(LogLevel::kDebug, "compressed {} bytes at {} into {}", u->bytes(), hex(u->begin), u->store.bytes);
}

}  // namespace nz::rt
