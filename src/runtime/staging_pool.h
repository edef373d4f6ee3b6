// staging_pool.h: physical memory that is mapped under compressed ranges
// while they are in use.
//
// A staged run (units contiguous in VA) gets ONE contiguous slice of one
// physical handle, so staging costs one cuMemMap + one cuMemSetAccess per run
// whatever its length. Where the slices come from depends on the budget:
//
// * With a fixed budget (NEUZIP_STAGING_MB) the pool is an arena: one "primary"
//   slab of the budget's size, created once at the first staging, from which
//   runs of any size are carved at page offsets (cuMemMap's offset), next
//   fit. After the first step no cuMemCreate is made on the launch path
//   whatever sizes the weights have (a handle per run size needed one
//   whenever the run evicted had another size). A run that finds no hole
//   large enough (the arena is fragmented by ranges a call holds) is mapped
//   in pieces from the largest holes, and only what they cannot hold comes
//   from a new slab (released once idle): the arena never holds more memory
//   than handles of exact sizes would.
// * With the adaptive budget each run gets a slab of exactly its size, kept
//   for reuse by the next run of that size (layers repeat sizes) until memory
//   is needed: under pressure memory must go back to the driver, and a large
//   slab with one live slice could not.
//
// A driver that refuses mapping at an offset (the H200's, 580 / CUDA 13,
// refuses any slice of a handle) turns the arena off: one handle of exactly
// each run's size, kept for the next run of that size. With
// NEUZIP_STAGING_HANDLES=pages, where the driver also takes one cuMemUnmap
// over several mappings, the arena becomes *granular* instead: the budget is
// created up front as one handle per page (2 MiB), and a run is mapped from
// as many of them as it has pages, end to end (a cuMemMap per page, about
// 1-2 µs each there, then one cuMemSetAccess and, where the driver takes it,
// one cuMemUnmap over the whole run). Any run's pages then serve any other
// run: no cuMemCreate after the first step whatever sizes the weights have,
// and an eviction (or a handover) makes room for a run of any size. (Before,
// every run had a handle of exactly its size: a run of a new size cost a
// create, and a handover made room only for a run of the victim's size.)
//
// Not thread-safe: used under the runtime mutex.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "runtime/vmm_allocator.h"

namespace nz::rt {

class StagingPool;

// One physical handle and which of its bytes no slice holds.
struct StagingSlab {
  UniquePhysicalMemory handle;
  size_t bytes = 0;
  bool primary = false;            // the fixed budget's arena: kept when idle
  std::map<size_t, size_t> free;   // offset -> length, coalesced
  StagingPool* pool = nullptr;
  // Old mappings of handovers not settled yet (handoff.h) still show these
  // pages: the slab must not go back to the driver (it would not free them).
  int given_mappings = 0;
  // No slice taken (its pages may still show under a handover's old mapping).
  bool unused() const { return free.size() == 1 && free.begin()->first == 0 && free.begin()->second == bytes; }
  bool idle() const { return given_mappings == 0 && unused(); }
};

// A slice of a slab: what one staged run (or a range made resident for good)
// is mapped from. Destroying it gives its bytes back to the slab.
class StagingMemory {
 public:
  StagingMemory() = default;
  StagingMemory(StagingMemory&& o) noexcept { *this = std::move(o); }
  StagingMemory& operator=(StagingMemory&& o) noexcept;
  StagingMemory(const StagingMemory&) = delete;
  StagingMemory& operator=(const StagingMemory&) = delete;
  ~StagingMemory() { reset(); }

  CUmemGenericAllocationHandle get() const noexcept { return slab_ ? slab_->handle.get() : 0; }
  size_t offset() const noexcept { return offset_; }
  // Whether this slice is its whole handle (what any driver maps).
  bool whole() const noexcept { return slab_ && offset_ == 0 && bytes_ == slab_->bytes; }
  size_t bytes() const noexcept { return bytes_; }
  explicit operator bool() const noexcept { return slab_ != nullptr; }
  void reset() noexcept;

 private:
  friend class StagingPool;
  std::shared_ptr<StagingSlab> slab_;
  size_t offset_ = 0;
  size_t bytes_ = 0;
  bool detached_ = false;  // kept for good by its range: not staging any more
};

// A run's staging memory: slices mapped end to end in VA order (one in the
// common case: one cuMemMap + one cuMemSetAccess, one cuMemUnmap).
using StagingPieces = std::vector<StagingMemory>;
// Pieces given back while still mapped (a handover): their slabs, and sizes.
struct GivenMapping {
  std::vector<std::pair<std::shared_ptr<StagingSlab>, size_t>> pieces;
};
struct StagingPiecesView {
  const StagingMemory* data;
  size_t count;
};

class StagingPool {
 public:
  explicit StagingPool(VmmAllocator& vmm) : vmm_(vmm) {}
  // A fixed budget: the arena's primary slab size (0: exact slabs per run).
  // `pages`: on a driver that maps whole handles only, the granular arena
  // where it unmaps runs in one call (NEUZIP_STAGING_HANDLES=pages).
  void set_arena_bytes(size_t bytes, bool pages = false) noexcept {
    arena_bytes_ = bytes;
    pages_wanted_ = pages;
  }
  // Runs of any size from memory made once for the budget: slices of one
  // handle, or the granular arena's pages.
  bool arena() const noexcept {
    return arena_bytes_ != 0 &&
           (!offsets_refused_.load(std::memory_order_relaxed) || unmap_across_.load(std::memory_order_relaxed));
  }
  // The arena made of one handle per page (the driver maps whole handles only).
  bool granular() const noexcept {
    return arena_bytes_ != 0 && offsets_refused_.load(std::memory_order_relaxed) &&
           unmap_across_.load(std::memory_order_relaxed);
  }
  // The driver refused a mapping of part of a handle: whole handles from now
  // on (may be called without the runtime mutex).
  void refuse_offsets() noexcept { offsets_refused_.store(true, std::memory_order_relaxed); }
  // Whether one cuMemUnmap takes down a run mapped from several handles
  // (asked once the driver refused a slice; else one call per piece).
  bool unmaps_runs_whole() const noexcept { return unmap_across_.load(std::memory_order_relaxed); }

  // Memory for a run of `bytes`: from free space (holes of the arena, or an
  // idle slab of exactly that size), else (the rest) from a new slab.
  CUresult acquire(size_t bytes, StagingPieces& out) noexcept;
  // Maps the pieces end to end from `at` with read/write access; on failure
  // nothing stays mapped.
  CUresult map(CUdeviceptr at, const StagingPieces& pieces) noexcept;
  void unmap(CUdeviceptr at, StagingPiecesView pieces) noexcept;
  bool unmap_in_one_call(CUdeviceptr at, size_t total, size_t pieces) noexcept;
  void unmap(CUdeviceptr at, const StagingPieces& pieces) noexcept { unmap(at, {pieces.data(), pieces.size()}); }
  // Back to their slabs' free space (they must be unmapped).
  void give_back(StagingPieces& pieces) noexcept { pieces.clear(); }
  // give_back without unmapping (a handover: queued work still reads them
  // there, and whatever takes them next is ordered after that on the device);
  // `out` keeps their slabs until unmap_given. May throw (then nothing changed).
  void give_back_mapped(StagingPieces& pieces, GivenMapping& out);
  void unmap_given(CUdeviceptr at, GivenMapping& given) noexcept;
  // give_back, and the slabs they came from go back to the driver if that
  // left them idle (the arena's primary excepted): memory of a freed range.
  void release(StagingPieces& pieces) noexcept;
  // The caller keeps the pieces for good (their range became resident
  // again): they no longer count as staging.
  void detach(StagingPieces& pieces) noexcept;
  // Releases idle slabs (largest first; those of `prefer_size` bytes and,
  // when a run is coming, the arena's primary last) until at most
  // `keep_bytes` of free space stays cached: returns bytes released. An
  // idle primary slab that the budget has no room for goes too (the next
  // staging creates it again): the arena never holds more than the old
  // per-run handles did.
  size_t trim(size_t keep_bytes, size_t prefer_size = 0) noexcept;
  // Whether a run of `bytes` can be had without creating a handle.
  bool has_cached(size_t bytes) const noexcept;

  size_t in_use_bytes() const noexcept { return in_use_; }
  // Physical memory held and not staging anything (holes and idle slabs).
  size_t cached_bytes() const noexcept { return slab_total_ - in_use_ - detached_; }
  size_t physical_bytes() const noexcept { return slab_total_ - detached_; }
  size_t peak_bytes() const noexcept { return peak_; }

 private:
  friend class StagingMemory;
  // A slice came back (StagingMemory::reset).
  void returned(StagingSlab& slab, size_t offset, size_t bytes, bool detached) noexcept;
  // Takes `bytes` from the start of the hole at `hole` of `slab`.
  void take(const std::shared_ptr<StagingSlab>& slab, size_t hole, size_t bytes, StagingPieces& out);
  std::shared_ptr<StagingSlab> new_slab(size_t bytes, bool primary, CUresult& r);
  // The granular arena: whole unused handles, then new pages for the rest.
  CUresult acquire_whole_handles(size_t bytes, StagingPieces& out);
  void make_granular_arena();
  template <typename Pick>
  size_t pick_whole_handles(size_t bytes, Pick&& pick) const;
  void choose_whole_handle_pool();
  size_t drop(const std::shared_ptr<StagingSlab>& slab) noexcept;  // returns its bytes
  bool has_primary() const noexcept;

  static constexpr size_t kMaxPieces = 8;  // then the rest from a new slab (not in the granular arena)
  VmmAllocator& vmm_;
  std::vector<std::shared_ptr<StagingSlab>> slabs_;
  size_t arena_bytes_ = 0;
  const StagingSlab* cursor_slab_ = nullptr;  // where next fit starts looking (identity only)
  size_t cursor_offset_ = 0;
  std::atomic<bool> offsets_refused_{false};
  bool probed_ = false;  // whether the driver maps slices of a handle was asked
  bool pages_wanted_ = false;
  bool unmap_probed_ = false;
  std::atomic<bool> unmap_across_{false};
  size_t slab_total_ = 0;
  size_t in_use_ = 0;
  size_t detached_ = 0;
  size_t peak_ = 0;
};

}  // namespace nz::rt
