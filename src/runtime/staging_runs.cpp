// staging_runs.cpp: the three phases of staging compressed units: a handle
// per VA-contiguous run from the pool (lock held; the out-of-memory ladder
// lives here), one map + access + batched decode per run (no runtime state),
// then the units marked staged behind the decode's event.
#include "runtime/runtime.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

// ---- staging ----------------------------------------------------------------------------

// Splits compressed units into runs of VA-contiguous ones (units of one
// allocation, end to end), each staged with one mapping.
std::vector<std::vector<std::shared_ptr<Unit>>> runs_of(std::vector<std::shared_ptr<Unit>> units) {
  std::sort(units.begin(), units.end(), [](const auto& x, const auto& y) { return x->begin < y->begin; });
  std::vector<std::vector<std::shared_ptr<Unit>>> runs;
  for (auto& u : units) {
    if (runs.empty() || runs.back().back()->end != u->begin || runs.back().back()->allocation != u->allocation)
      runs.emplace_back();
    runs.back().push_back(std::move(u));
  }
  return runs;
}

// Phase 1 of staging (lock held): one handle per run, from the pool.
CUresult Runtime::acquire_runs(const std::vector<std::vector<std::shared_ptr<Unit>>>& runs,
                               std::vector<std::shared_ptr<StagedRun>>& out, bool may_wait) noexcept {
  CUresult r = CUDA_SUCCESS;
  try {
    for (const auto& units : runs) {
      if (units.empty()) continue;
      auto run = std::make_shared<StagedRun>();
      run->begin = units.front()->begin;
      run->end = units.back()->end;
      r = pool_.acquire(run->bytes(), run->memory);
      if (r == CUDA_ERROR_OUT_OF_MEMORY) {
        evict_all(may_wait);
        r = pool_.acquire(run->bytes(), run->memory);
      }
      if (r == CUDA_ERROR_OUT_OF_MEMORY && reclaim_stream_ordered_frees()) {
        evict_all(may_wait);
        r = pool_.acquire(run->bytes(), run->memory);
      }
      // Handovers that keep their pages until settled (exact handles of
      // another size): the host waits for them, and their pages come back.
      // (A guess, or the look-ahead stager, takes none of these: it waits for nothing.)
      if (r == CUDA_ERROR_OUT_OF_MEMORY && may_wait && held_bytes_ > 0) {
        reap_handoffs(true);
        evict_all(may_wait);
        r = pool_.acquire(run->bytes(), run->memory);
      }
      // Still short: staged ranges no eviction could take (held by calls in
      // flight or graphs) give their stores up; each is encoded again at
      // its eviction, or parked if there is no room for that then.
      if (r == CUDA_ERROR_OUT_OF_MEMORY && may_wait && give_up_staged_stores())
        r = pool_.acquire(run->bytes(), run->memory);
      if (r == CUDA_ERROR_OUT_OF_MEMORY && may_wait && give_up_reserve()) r = pool_.acquire(run->bytes(), run->memory);
      // Then the stores of ranges no call is using go to host memory.
      if (r == CUDA_ERROR_OUT_OF_MEMORY && may_wait && offload_stores(run->bytes()))
        r = pool_.acquire(run->bytes(), run->memory);
      run->after = handoff_fence();  // its pages may be ones a handover gave back
      if (r != CUDA_SUCCESS) {
        // A run that does not fit is retried unit by unit: only a single unit's failure is worth a line.
        if (runs.size() == 1 && units.size() == 1)
          log(LogLevel::kError, "no memory to stage {} bytes at {}: {} ({})", run->bytes(), hex(run->begin),
              error_name(r), memory_breakdown());
        break;
      }
      for (const auto& u : units) run->units.push_back(u);
      out.push_back(std::move(run));
    }
  } catch (...) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
  }
  if (r != CUDA_SUCCESS) release_runs(out, false);
  return r;
}

// Stores are freed in stream order (cuMemFreeAsync on the runtime's own
// streams: store_alloc, free_store_after). Until those streams reach the
// frees, and on a real driver until a synchronization returns the memory
// pool's free blocks to the device, that memory is not there for
// cuMemCreate: a staging short of memory waits for them once before it
// fails (a device behind its host made a run that fits fail now and then).
// Out of memory only, never on a steady-state launch. Lock held: those
// streams run no work of ours that takes it. True if it could wait.
// The release stream's frees wait for decodes queued on the program's
// streams, which may wait for work launched later: it is synchronized only
// once it ran dry within the patience (then at once, for the driver's pool).
bool Runtime::reclaim_stream_ordered_frees() noexcept {
  bool waited = false;
  for (CUstream s : {internal_.get(), release_stream_.get()}) {
    if (s == nullptr) continue;
    if (s == release_stream_.get()) {
      SharedEvent drained = record_event(s);
      if (!await_events({drained}, TraceClock::now())) continue;
    }
    waited |= driver().base.cuStreamSynchronize(s) == CUDA_SUCCESS;
  }
  std::erase_if(freed_later_, [](const FreedLater& f) { return event_done(f.after); });
  return waited;
}

// The out-of-memory path's last resort before a staging fails: every staged
// lossless range gives its store up once its decode completed (the host
// waits for it, within the patience: await_decode). Their pages hold the
// data; each costs an encode (or a park) at its eviction. True if any store went.
bool Runtime::give_up_staged_stores() noexcept {
  bool freed = false;
  for (const auto& u : staged_) {
    // Not one the look-ahead stager is settling with the lock dropped (incoming).
    if (u->dead || u->state != UnitState::kStaged || u->incoming || !u->store.data ||
        CompressedStore::lossy_for(u->dtype, config_))
      continue;
    if (u->ready && *u->ready && !await_decode(*u)) continue;
    give_store_up(*u);
    freed = true;
  }
  return freed;
}

// Then the encode reserve (reserve_for_pressure): a staging that needs its
// memory matters more than an encode that might; from then on an eviction
// with no room to encode parks the range in host memory (park). For good: a
// device this short would take it back and give it up at every staging.
bool Runtime::give_up_reserve() noexcept {
  if (!store_ || reserve_given_up_ || !store_->release_reserve(return_stream_.get())) return false;
  reserve_given_up_ = true;
  log(LogLevel::kInfo, "a staging needed the memory reserved for encoding: reserve given up");
  return true;
}

// Gives the handles of runs that were not (or are no longer) mapped back.
void Runtime::release_runs(std::vector<std::shared_ptr<StagedRun>>& runs, bool mapped) noexcept {
  for (auto& run : runs) {
    if (run->memory.empty()) continue;
    if (mapped) pool_.unmap(run->begin, run->memory);
    pool_.give_back(run->memory);
  }
  runs.clear();
}

// Phase 2 (no runtime state: the look-ahead stager runs it without the lock):
// one cuMemMap + cuMemSetAccess per run, one decode launch per 64 units.
CUresult Runtime::map_and_decode(const std::vector<std::shared_ptr<StagedRun>>& runs, CUstream stream,
                                 uint64_t& launches) noexcept {
  size_t mapped = 0;
  CUresult r = CUDA_SUCCESS;
  std::vector<CompressedStore::DecodeTarget> targets;
  struct Restore {
    CUdeviceptr dst;
    const void* src;
    size_t bytes;
  };
  std::vector<Restore> restores;  // units a handover's change test found changed (handoff.h)
  // Handovers settle in order on one stream: the newest fence of the runs covers the older ones.
  CUevent fence = nullptr;
  try {
    for (const auto& run : runs) {
      r = pool_.map(run->begin, run->memory);
      if ((r == CUDA_ERROR_INVALID_VALUE || r == CUDA_ERROR_NOT_SUPPORTED) &&
          std::any_of(run->memory.begin(), run->memory.end(), [](const StagingMemory& m) { return !m.whole(); })) {
        // A driver that maps whole handles only (the arena's probe did not
        // catch it): no arena from now on; the caller retries unit by unit
        // (out of memory) with exact handles.
        static std::atomic<bool> said{false};
        if (!said.exchange(true))
          log(LogLevel::kError, "the driver refuses cuMemMap of a part of a handle ({}): one staging handle per run",
              error_name(r));
        pool_.refuse_offsets();
        r = CUDA_ERROR_OUT_OF_MEMORY;
      }
      if (r != CUDA_SUCCESS) break;
      ++mapped;
      if (run->after && *run->after) fence = run->after->get();
      for (const auto& w : run->units) {
        auto u = w.lock();
        if (!u) continue;
        if (u->rescue) restores.push_back({u->begin, u->rescue->host() + u->rescue_offset, u->bytes()});
        else targets.push_back({&u->store, u->begin});
      }
    }
  } catch (...) {
    r = CUDA_ERROR_OUT_OF_MEMORY;
  }
  // Pages a handover gave back are written only after its change test read them.
  if (fence != nullptr && r == CUDA_SUCCESS) r = driver().base.cuStreamWaitEvent(stream, fence, 0);
  for (const auto& c : restores) {
    if (r == CUDA_SUCCESS) r = driver().base.cuMemcpyHtoDAsync(c.dst, c.src, c.bytes, stream);
  }
  if (r == CUDA_SUCCESS && !targets.empty()) r = store_->decode_batch(targets, stream, launches);
  if (r != CUDA_SUCCESS) {
    for (size_t i = 0; i < mapped; ++i) pool_.unmap(runs[i]->begin, runs[i]->memory);
  }
  return r;
}

bool Runtime::keep_until(const SharedEvent& after, std::shared_ptr<RescueSlot>& slot) noexcept {
  if (!after || !*after) return false;
  reap_kept();
  try {
    kept_until_.emplace_back(after, slot);  // copied: on failure the caller still holds it
  } catch (...) {
    return false;
  }
  slot.reset();
  return true;
}

void Runtime::reap_kept() noexcept {
  std::erase_if(kept_until_, [](const auto& k) { return event_done(k.first); });
}

// Phase 3 (lock held): the runs' units are staged, ready after `ready`.
void Runtime::finish_runs(const std::vector<std::shared_ptr<StagedRun>>& runs, const SharedEvent& ready,
                          CUstream decode_stream, bool capturing, TraceClock::time_point start) noexcept {
  for (auto& run : runs) {
    for (auto& u : run->alive()) {
      if (u->rescue) {
        // Staged from its copy: the copy must be complete before its host
        // memory goes back to the pool, and the stale store is replaced at
        // the next eviction. The slot is kept until the decode's event, not
        // waited for: the decode is queued on the launching stream, which
        // may wait for work launched later (patient_wait.cpp).
        if (!keep_until(ready, u->rescue)) driver().base.cuStreamSynchronize(decode_stream);
        u->rescue.reset();
        u->recode = true;
      }
      u->ready = ready;
      u->add_use(ready, decode_stream);
      u->run = run;
      u->state = UnitState::kStaged;
      // A store given back must be encoded again at eviction, before its run
      // is unmapped: only a run of one unit can do that without more memory
      // (release_store_if_pressed decides for larger runs).
      if (!capturing) release_store_if_pressed(*u, run->units.size() == 1);
      stats_.decompressions.add();
      stats_.bytes_decompressed.add(u->bytes());
      // The stream tells nztrace's timeline which track the decode belongs on.
      if (trace_.enabled())
        emit_timed("stage", u->begin, u->bytes(), start,
                   fmt::format("\"stream\":\"{:#x}\"", reinterpret_cast<uintptr_t>(decode_stream)));
    }
  }
  stats_.staging_bytes.set(pool_.in_use_bytes());
  stats_.staging_bytes_peak.raise_to(pool_.in_use_bytes());
  update_saved();
}

CUresult Runtime::stage_runs(const std::vector<std::vector<std::shared_ptr<Unit>>>& runs, CUstream stream,
                             bool capturing, bool may_wait) noexcept {
  const detail::ContextBinding bound(context_);  // called from another device's context: work in ours
  const auto start = TraceClock::now();
  // On the program's stream (ordered before its kernel for free), unless it
  // captures or belongs to another context (detail::ContextBinding): then on
  // the runtime's, and the program's stream waits for the decode's event.
  const bool foreign = !capturing && detail::callers_stream_elsewhere(stream, context_);
  const CUstream decode_stream = capturing || foreign ? internal_.get() : stream;
  // A unit handed over lately keeps its old mapping until its handover settles.
  if (!handoffs_.empty()) {
    for (const auto& units : runs) settle_handoffs_of(units);
  }
  std::vector<std::shared_ptr<StagedRun>> acquired;
  CUresult r = acquire_runs(runs, acquired, may_wait);
  if (r != CUDA_SUCCESS) return r;
  uint64_t launches = 0;
  r = map_and_decode(acquired, decode_stream, launches);
  if (r != CUDA_SUCCESS) {
    release_runs(acquired, false);
    return r;
  }
  stats_.decode_launches.add(launches);
  SharedEvent ready = record_event(decode_stream);
  if (capturing) driver().base.cuStreamSynchronize(internal_.get());
  if (foreign) {
    const bool waits = ready && *ready && detail::on_callers_context([&] {
      return driver().base.cuStreamWaitEvent(stream, ready->get(), 0) == CUDA_SUCCESS;
    });
    if (!waits) driver().base.cuStreamSynchronize(internal_.get());  // the host waits instead
  }
  finish_runs(acquired, ready, decode_stream, capturing, start);
  return CUDA_SUCCESS;
}

CUresult Runtime::stage(const std::shared_ptr<Unit>& u, CUstream stream, bool capturing) noexcept {
  try {
    return stage_runs({{u}}, stream, capturing);
  } catch (...) {
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
}

// Orders `stream` after the decode that staged `u`, if that may still run
// (a captured stream cannot wait on an outside event: the host waits instead).
void Runtime::wait_for_decode(Unit& u, CUstream stream, bool capturing) noexcept {
  if (!u.ready) return;
  if (event_done(u.ready)) {
    u.ready.reset();  // asked once: later launches need no cuEventQuery
    return;
  }
  if (capturing) {
    driver().base.cuEventSynchronize(u.ready->get());
    return;
  }
  auto wait = [&] { return driver().base.cuStreamWaitEvent(stream, u.ready->get(), 0) == CUDA_SUCCESS; };
  const bool waits = detail::callers_stream_elsewhere(stream, context_) ? detail::on_callers_context(wait) : wait();
  if (!waits) driver().base.cuEventSynchronize(u.ready->get());  // the host waits instead
}

}  // namespace nz::rt
