// unit.h: one compressible range (whole pages of a managed allocation, fully
// covered by tags) and its state.
#pragma once

#include <cuda.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/compressed_store.h"
#include "runtime/driver_objects.h"
#include "runtime/reuse_forecast.h"
#include "runtime/rewrite_policy.h"
#include "runtime/staging_pool.h"

namespace nz::rt {

enum class UnitState : uint8_t {
  kResident,    // the allocation's own pages back it; waiting to be compressed (or never)
  kCompressed,  // no physical pages; the data lives in the store
  kStaged,      // staging pages mapped and decoded (the store is kept: unchanged = drop)
};

struct Unit;
struct Handoff;  // handoff.h
struct LaunchingThread;  // trailing_uses.cpp
class RescueSlot;  // rescue_pool.h

// Staging memory under a run of units that are contiguous in VA: ONE slice
// (pieces only when the arena is fragmented),
// mapped with one cuMemMap and one cuMemSetAccess, decoded by one batched
// launch, unmapped with one cuMemUnmap. A real driver cannot unmap part of a
// mapping, so the run is evicted (or kept resident for good) as a whole.
struct StagedRun {
  CUdeviceptr begin = 0;
  CUdeviceptr end = 0;
  StagingPieces memory;  // slices of the pool's slabs, mapped end to end (one, mostly)
  // Handovers (handoff.h) whose pages the slices may be: the decode waits for them on the device.
  SharedEvent after;
  // In address order. Weak: units own their run, not the other way round.
  std::vector<std::weak_ptr<Unit>> units;
  size_t bytes() const { return static_cast<size_t>(end - begin); }
  // The units still alive (a freed allocation's units may be gone).
  std::vector<std::shared_ptr<Unit>> alive() const {
    std::vector<std::shared_ptr<Unit>> out;
    out.reserve(units.size());
    for (const auto& w : units)
      if (auto u = w.lock()) out.push_back(std::move(u));
    return out;
  }
};

struct Unit {
  CUdeviceptr begin = 0;
  CUdeviceptr end = 0;  // exclusive, page aligned
  int dtype = 0;        // NZ_TAG_*
  CUdeviceptr allocation = 0;
  UnitState state = UnitState::kResident;
  bool tracked = false;        // present in the range map
  bool dead = false;           // removed (freed, untagged): ignore stale references
  bool want_compress = true;
  // May be compressed now: filled while loading, declared with nz_tag, forced
  // (pressure, nz_flush), or used in Config::long_lived_uses iterations since
  // its last fill. Until then it is not pending (recycled memory: a batch).
  bool long_lived = false;
  uint64_t last_use_generation = ~uint64_t{0};
  uint32_t use_generations = 0;   // iterations that used it since its last fill
  uint64_t fill_generation = 0;   // the iteration it was created in
  bool refilled = false;          // copied into again from the host: recycled memory
  StoredRange store;
  // The size of its last encoding, kept when the store is given up: encoding
  // the same content again gives this size (a rewritten weight, about this).
  size_t encoded_bytes = 0;
  uint8_t encoded_dtype = 0;  // the nz_dtype it was last encoded as (0: never)
  std::shared_ptr<StagedRun> run;  // while kStaged: the mapping it is part of
  SharedEvent ready;           // after the decode that staged it
  // Events after the launches and copies that used it and may not have
  // completed yet (several streams can use one range at once).
  std::vector<SharedEvent> uses;
  std::vector<CUstream> use_streams;  // uses[i] was recorded on use_streams[i] (add_use)
  uint64_t uses_epoch = 0;            // stream_destroy_epoch() when use_streams was last valid
  // Used by the last tracked call that a thread made on a stream: launches it
  // queues after that call may read it through pointers a kernel wrote, until
  // its next tracked call on the stream (trailing_uses.cpp). One per thread
  // and stream (several threads and streams can read one range at once).
  struct OpenUse {
    CUstream stream = nullptr;
    std::shared_ptr<LaunchingThread> owner;  // the calling thread (trailing_uses.cpp)
    uint64_t seq = 0;             // the thread's seq-th tracked call on the stream
    uint64_t owner_launches = 0;  // launches the thread had queued, that call's included
    int64_t ns = 0;               // steady-clock time of that call
  };
  std::vector<OpenUse> opens;
  std::vector<SharedEvent> filled;  // after the copies that filled it
  int in_flight = 0;           // launches between before_ and after_ hooks
  int pins = 0;                // captured graphs use it: never evicted
  int change_streak = 0;       // consecutive evictions that found it changed
  ChangeHistory changes;       // what its evictions found, per iteration (rewrite_policy.h)
  int compress_attempts = 0;   // compressions that found no memory for their scratch
  uint64_t no_memory_epoch = 0; // the runtime's memory epoch when that last happened
  uint64_t lru_tick = 0;
  UseHistory uses_seen;          // when the last two iterations used it (reuse_forecast.h)
  bool recode = false;           // dtype changed since it was stored: re-encode at eviction
  bool prefetched = false;      // staged ahead of use and not used yet
  bool incoming = false;        // being staged by the look-ahead stager (runtime lock dropped)
  std::weak_ptr<Unit> next_guess;  // what was staged after it last time
  // Evicted by handing its pages over on the device (handoff.h): until that
  // handover is settled its old mapping stays and its change test may still run.
  std::shared_ptr<Handoff> handoff;
  // The change test found it changed after all: its content is here (the
  // store is stale), copied back when it is staged next.
  std::shared_ptr<RescueSlot> rescue;
  size_t rescue_offset = 0;
  int clean_evictions = 0;  // evictions in a row that found it unchanged
  bool ever_changed = false;  // an eviction found it changed (it is not handed over then)

  size_t bytes() const { return static_cast<size_t>(end - begin); }

  // Uses on the default streams (not replaced) are pruned of finished ones
  // only when this many pile up.
  static constexpr size_t kPrunedAt = 8;

  // A launch or copy on `stream` used it; `e` was recorded after it. An event
  // recorded later on the same stream completes after an earlier one, so it
  // replaces that stream's previous use without asking the driver anything
  // (the hot path: pruning every finished use cost one cuEventQuery per
  // pending use per launch). The per-thread stream handle names a different
  // stream on each thread: its uses are kept apart and pruned. The legacy
  // default stream (0 or CU_STREAM_LEGACY: where PyTorch launches by
  // default) is one stream per context: `own_legacy` says the caller's
  // context is the runtime's, and its uses then replace each other too
  // (pruning them cost a query per pending use on every launch: with a deep
  // queue, O(queue) per launch).
  void add_use(SharedEvent e, CUstream stream, bool own_legacy = false) {
    if (!e) return;
    const bool legacy = stream == nullptr || stream == CU_STREAM_LEGACY;
    if (legacy && own_legacy) stream = CU_STREAM_LEGACY;
    const bool ordered = legacy ? own_legacy : stream != CU_STREAM_PER_THREAD;
    // A stream destroyed since: its handle may now name another stream while
    // the old one's work still runs. Older uses are then never replaced.
    if (const uint64_t epoch = stream_destroy_epoch(); epoch != uses_epoch) {
      std::fill(use_streams.begin(), use_streams.end(), nullptr);
      uses_epoch = epoch;
    }
    if (ordered) {
      for (size_t i = 0; i < uses.size(); ++i) {
        if (use_streams[i] == stream) {
          uses[i] = std::move(e);
          return;
        }
      }
    }
    if (uses.size() >= kPrunedAt) {
      size_t kept = 0;
      for (size_t i = 0; i < uses.size(); ++i) {
        if (event_done(uses[i])) continue;
        uses[kept] = std::move(uses[i]);
        use_streams[kept++] = use_streams[i];
      }
      uses.resize(kept);
      use_streams.resize(kept);
    }
    uses.push_back(std::move(e));
    use_streams.push_back(stream);
  }
  void clear_uses() {
    uses.clear();
    use_streams.clear();
  }
  bool uses_done() const {
    for (const auto& e : uses) if (!event_done(e)) return false;
    return true;
  }
  // Host wait until every recorded use completed.
  void wait_uses() {
    for (const auto& e : uses) if (e && *e) driver().base.cuEventSynchronize(e->get());
    clear_uses();
  }
};

// What the hot path finds for an address: the units a kernel given that
// address may read (see Runtime::republish), as a suffix of a shared list in
// address order: all[first..] (the units of the tag holding the address and
// of the tags after it in its cluster, or every unit of the allocation).
struct TagExtent {
  std::shared_ptr<const std::vector<std::shared_ptr<Unit>>> all;
  size_t first = 0;
  // Exclusive; SIZE_MAX: to the end of `all` (a suffix, the usual reach).
  // Smaller only for a tensor declared by nz_tag with NEUZIP_TAG_EXTENTS=1.
  size_t last = SIZE_MAX;
  size_t end() const { return all ? std::min(last, all->size()) : 0; }
  bool empty() const { return first >= end(); }
};

}  // namespace nz::rt
