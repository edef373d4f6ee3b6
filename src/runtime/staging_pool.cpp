#include "runtime/staging_pool.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "runtime/log.h"

namespace nz::rt {

StagingMemory& StagingMemory::operator=(StagingMemory&& o) noexcept {
  if (this != &o) {
    reset();
    slab_ = std::move(o.slab_);
    offset_ = std::exchange(o.offset_, 0);
    bytes_ = std::exchange(o.bytes_, 0);
    detached_ = std::exchange(o.detached_, false);
  }
  return *this;
}

void StagingMemory::reset() noexcept {
  if (!slab_) return;
  if (slab_->pool != nullptr) slab_->pool->returned(*slab_, offset_, bytes_, detached_);
  slab_.reset();  // the last slice of a slab the pool released frees the handle
  offset_ = bytes_ = 0;
  detached_ = false;
}

std::shared_ptr<StagingSlab> StagingPool::new_slab(size_t bytes, bool primary, CUresult& r) {
  auto slab = std::make_shared<StagingSlab>();
  r = vmm_.create(bytes, slab->handle);
  if (r != CUDA_SUCCESS) return nullptr;
  slab->bytes = bytes;
  slab->primary = primary;
  slab->pool = this;
  slab->free.emplace(0, bytes);
  slabs_.push_back(slab);
  slab_total_ += bytes;
  return slab;
}

void StagingPool::take(const std::shared_ptr<StagingSlab>& slab, size_t hole, size_t bytes, StagingPieces& out) {
  out.emplace_back();  // first: may throw, before the hole is touched
  auto it = slab->free.find(hole);
  const size_t rest = it->second - bytes;
  slab->free.erase(it);
  if (rest > 0) {
    try {
      slab->free.emplace(hole + bytes, rest);
    } catch (...) {
      // Losing track of the rest only wastes it until the slab is released.
    }
  }
  StagingMemory& m = out.back();
  m.slab_ = slab;
  m.offset_ = hole;
  m.bytes_ = bytes;
  in_use_ += bytes;
}

// The granular arena's pages up to the budget (those made already count).
// Short of memory, what was made serves; the rest comes per run.
void StagingPool::make_granular_arena() {
  const size_t page = vmm_.page_size();
  size_t have = 0;
  for (const auto& sl : slabs_)
    if (sl->primary) have += sl->bytes;
  CUresult r = CUDA_SUCCESS;
  for (; have + page <= arena_bytes_; have += page)
    if (!new_slab(page, true, r)) break;
}

// The driver mapped no part of a handle. With pages asked for: is one
// cuMemUnmap per run possible over runs of page handles? Then the granular
// arena (its first two pages answer the question); else a handle of exactly
// each run's size, as without (one unmap per page would cost more than the
// creates the arena saves: 16 calls of 27-37 µs for a 32 MiB weight on the
// H200).
void StagingPool::choose_whole_handle_pool() {
  if (unmap_probed_) return;
  unmap_probed_ = true;
  if (!pages_wanted_) {
    log(LogLevel::kInfo, "the driver maps whole handles only: staging uses one handle per run");
    return;
  }
  const size_t page = vmm_.page_size();
  CUresult r = CUDA_SUCCESS;
  auto a = new_slab(page, true, r);
  auto b = a ? new_slab(page, true, r) : nullptr;
  if (!a || !b) {
    // Not the driver's answer, but the device is that short at the first
    // staging: exact handles, which give memory back run by run.
    if (a) drop(a);
    log(LogLevel::kInfo, "no memory for two pages to ask the driver about unmapping runs ({}): one staging handle "
        "per run", error_name(r));
    return;
  }
  const bool across = vmm_.unmaps_across(a->handle.get(), b->handle.get());
  unmap_across_.store(across, std::memory_order_relaxed);
  if (across) {
    make_granular_arena();
    log(LogLevel::kInfo,
        "the driver maps whole handles only: staging maps each run from {} handles of {} KiB made up front",
        arena_bytes_ / page, page >> 10);
  } else {
    drop(a);
    drop(b);
    log(LogLevel::kInfo, "the driver maps whole handles only and unmaps one per call: one staging handle per run");
  }
}

// Unused handles no larger than what is left of `bytes` (the arena's pages
// first, so that pages made beyond it fall idle and go back), whole: the
// driver maps nothing less. A handle a handover gave back while still mapped
// is as good (the run waits for the handovers' fence on the device,
// handoff.h). Returns what is left for new pages; `pick` gets each handle.
template <typename Pick>
size_t StagingPool::pick_whole_handles(size_t bytes, Pick&& pick) const {
  size_t left = bytes;
  for (int pass = 0; pass < 2 && left > 0; ++pass) {
    for (size_t i = 0; i < slabs_.size() && left > 0; ++i) {
      const auto& s = slabs_[i];
      if (s->primary != (pass == 0) || !s->unused() || s->bytes > left) continue;
      pick(s);
      left -= s->bytes;
    }
  }
  return left;
}

CUresult StagingPool::acquire_whole_handles(size_t bytes, StagingPieces& out) {
  CUresult r = CUDA_SUCCESS;
  const size_t page = vmm_.page_size();
  // Made again after trim gave every page back (the budget had no room).
  if (!has_primary() && bytes <= arena_bytes_) make_granular_arena();
  std::vector<std::shared_ptr<StagingSlab>> picked;
  size_t left = pick_whole_handles(bytes, [&](const std::shared_ptr<StagingSlab>& s) { picked.push_back(s); });
  for (const auto& s : picked) take(s, 0, s->bytes, out);
  // The rest from new pages, one handle each (they serve any run later).
  while (left > 0) {
    const size_t n = std::min(left, page);
    auto slab = new_slab(n, false, r);
    if (!slab) {
      out.clear();
      return r;
    }
    take(slab, 0, n, out);
    left -= n;
  }
  return CUDA_SUCCESS;
}

CUresult StagingPool::acquire(size_t bytes, StagingPieces& out) noexcept {
  out.clear();
  CUresult r = CUDA_SUCCESS;
  try {
    if (granular()) {
      r = acquire_whole_handles(bytes, out);
      if (r != CUDA_SUCCESS) return r;
    } else if (!arena()) {
      // An unused slab of exactly this size, else a new one. One a handover
      // gave back while still mapped is as good (what takes it next is
      // ordered after the handover's change test on the device, handoff.h:
      // a handle may be mapped at two addresses at once), and preferred: it
      // is the eviction that made room for this run.
      std::shared_ptr<StagingSlab> from;
      for (const auto& s : slabs_)
        if (s->bytes == bytes && s->unused() && (!from || s->given_mappings > from->given_mappings)) from = s;
      if (!from) from = new_slab(bytes, false, r);
      if (!from) return r;
      take(from, 0, bytes, out);
    } else {
      if (bytes <= arena_bytes_ && !has_primary()) {
        auto primary = new_slab(arena_bytes_, true, r);  // the arena, once
        if (!primary) return r;
        if (!probed_ && arena_bytes_ > vmm_.page_size()) {
          // Before any run relies on it: does this driver map slices?
          probed_ = true;
          if (!vmm_.maps_part_of(primary->handle.get())) {
            refuse_offsets();
            drop(primary);
            choose_whole_handle_pool();
            return acquire(bytes, out);  // the granular arena, or exact slabs
          }
        }
      }
      // Next fit: the first hole that holds the whole run, from where the
      // last run was placed on. Staging follows the loop's order and eviction
      // takes the least recently used, so the arena works as a ring: the
      // runs evicted are the ones just after the cursor, and their holes
      // merge into room for the next run (best fit left holes between
      // survivors that no later run fitted: runs in pieces).
      // Holes that hold the run, in (slab, offset) order; the first one at or
      // after the cursor, else the first one (wrapping round).
      std::vector<std::pair<std::shared_ptr<StagingSlab>, size_t>> fits;
      for (const auto& sl : slabs_)
        for (const auto& [hole, length] : sl->free)
          if (length >= bytes) fits.emplace_back(sl, hole);
      auto at = std::find_if(fits.begin(), fits.end(), [&](const auto& f) {
        return f.first.get() == cursor_slab_ && f.second >= cursor_offset_;
      });
      if (at == fits.end()) at = fits.begin();
      if (at != fits.end()) {
        const auto [best, best_hole] = *at;
        take(best, best_hole, bytes, out);
        cursor_slab_ = best.get();
        cursor_offset_ = best_hole + bytes;
      } else {
        // Fragmented: the largest holes first (few pieces), the rest from a
        // slab of its own.
        std::vector<std::tuple<size_t, size_t, std::shared_ptr<StagingSlab>>> holes;
        for (const auto& s : slabs_)
          for (const auto& [hole, length] : s->free) holes.emplace_back(length, hole, s);
        std::sort(holes.begin(), holes.end(),
                  [](const auto& x, const auto& y) { return std::get<0>(x) > std::get<0>(y); });
        size_t left = bytes;
        for (const auto& [length, hole, s] : holes) {
          if (left == 0 || out.size() + 1 >= kMaxPieces) break;
          const size_t n = std::min(length, left);
          take(s, hole, n, out);
          left -= n;
        }
        if (left > 0) {
          auto slab = new_slab(left, false, r);
          if (!slab) {
            out.clear();
            return r;
          }
          take(slab, 0, left, out);
        }
      }
    }
  } catch (...) {
    out.clear();
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  peak_ = std::max(peak_, in_use_);
  return CUDA_SUCCESS;
}

CUresult StagingPool::map(CUdeviceptr at, const StagingPieces& pieces) noexcept {
  if (pieces.size() == 1) return vmm_.map(at, pieces[0].bytes(), pieces[0].get(), pieces[0].offset());
  // Each piece mapped, then access for all of them in one call.
  CUdeviceptr va = at;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const StagingMemory& m = pieces[i];
    const CUresult r = vmm_.map_without_access(va, m.bytes(), m.get(), m.offset());
    if (r != CUDA_SUCCESS) {
      unmap(at, StagingPiecesView{pieces.data(), i});
      return r;
    }
    va += m.bytes();
  }
  const CUresult r = vmm_.set_access(at, static_cast<size_t>(va - at));
  if (r != CUDA_SUCCESS) unmap(at, pieces);
  return r;
}

// One call for a run of several mappings where the driver takes it
// (probed); false: the caller unmaps piece by piece (a real driver unmaps
// whole mappings only).
bool StagingPool::unmap_in_one_call(CUdeviceptr at, size_t total, size_t pieces) noexcept {
  return pieces > 1 && unmaps_runs_whole() && vmm_.unmap(at, total) == CUDA_SUCCESS;
}

void StagingPool::unmap(CUdeviceptr at, StagingPiecesView pieces) noexcept {
  size_t total = 0;
  for (size_t i = 0; i < pieces.count; ++i) total += pieces.data[i].bytes();
  if (unmap_in_one_call(at, total, pieces.count)) return;
  for (size_t i = 0; i < pieces.count; ++i) {
    vmm_.unmap(at, pieces.data[i].bytes());
    at += pieces.data[i].bytes();
  }
}

void StagingPool::detach(StagingPieces& pieces) noexcept {
  for (auto& m : pieces) {
    if (!m || m.detached_) continue;
    m.detached_ = true;
    in_use_ -= std::min(in_use_, m.bytes_);
    detached_ += m.bytes_;
  }
}

void StagingPool::returned(StagingSlab& slab, size_t offset, size_t bytes, bool detached) noexcept {
  if (detached) detached_ -= std::min(detached_, bytes);
  else in_use_ -= std::min(in_use_, bytes);
  // Coalesce with the holes either side.
  size_t begin = offset, length = bytes;
  auto next = slab.free.lower_bound(offset);
  if (next != slab.free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == begin) {
      begin = prev->first;
      length += prev->second;
      slab.free.erase(prev);
    }
  }
  if (next != slab.free.end() && next->first == offset + bytes) {
    length += next->second;
    slab.free.erase(next);
  }
  try {
    slab.free.emplace(begin, length);
  } catch (...) {
  }
}

bool StagingPool::has_primary() const noexcept {
  return std::any_of(slabs_.begin(), slabs_.end(), [](const auto& s) { return s->primary; });
}

// Back to the driver (idle slabs only: no slice refers to it any more).
size_t StagingPool::drop(const std::shared_ptr<StagingSlab>& slab) noexcept {
  slab_total_ -= slab->bytes;
  slab->handle.reset();
  slab->pool = nullptr;
  std::erase(slabs_, slab);
  return slab->bytes;
}

void StagingPool::give_back_mapped(StagingPieces& pieces, GivenMapping& out) {
  out.pieces.reserve(pieces.size());  // may throw: before anything changes
  for (const auto& m : pieces) {
    out.pieces.emplace_back(m.slab_, m.bytes());
    ++m.slab_->given_mappings;
  }
  pieces.clear();
}

void StagingPool::unmap_given(CUdeviceptr at, GivenMapping& given) noexcept {
  size_t total = 0;
  for (const auto& piece : given.pieces) total += piece.second;
  const bool whole = unmap_in_one_call(at, total, given.pieces.size());
  for (auto& [slab, bytes] : given.pieces) {
    if (!whole) vmm_.unmap(at, bytes);
    at += bytes;
    if (slab->given_mappings > 0) --slab->given_mappings;
  }
  given.pieces.clear();
}

void StagingPool::release(StagingPieces& pieces) noexcept {
  std::vector<std::shared_ptr<StagingSlab>> from;
  try {
    for (const auto& m : pieces) from.push_back(m.slab_);
  } catch (...) {
  }
  pieces.clear();
  for (const auto& s : from)
    if (s->handle && !s->primary && s->idle()) drop(s);
}

size_t StagingPool::trim(size_t keep_bytes, size_t prefer_size) noexcept {
  size_t released = 0;
  // Largest idle slabs first (frees the most per call); the arena's primary
  // last: an overflow slab (made while the arena was too fragmented for a
  // run) goes before it.
  std::vector<std::shared_ptr<StagingSlab>> idle;
  // The granular arena's pages go as the single arena handle would: all
  // together, only when none is in use (one by one, every idle page went
  // whenever a run did not fit, and the arena shrank into creates).
  bool arena_idle = true;
  if (granular())
    for (const auto& s : slabs_) arena_idle = arena_idle && (!s->primary || s->idle());
  for (const auto& s : slabs_)
    if (s->idle() && (!s->primary || arena_idle)) idle.push_back(s);
  std::sort(idle.begin(), idle.end(), [](const auto& x, const auto& y) {
    return x->primary != y->primary ? y->primary : x->bytes > y->bytes;
  });
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& s : idle) {
      if (cached_bytes() <= keep_bytes) return released;
      if (!s->handle || (pass == 0 && (s->bytes == prefer_size || (s->primary && prefer_size != 0)))) continue;
      if (s->primary && granular()) {
        // All of the arena's pages at once (all idle, above): a part would
        // leave an arena too small for the runs it was made for.
        for (const auto& p : idle)
          if (p->primary && p->handle) released += drop(p);
        continue;
      }
      released += drop(s);
    }
  }
  return released;
}

bool StagingPool::has_cached(size_t bytes) const noexcept {
  const bool use_arena = arena();
  // The arena is made at its first use.
  if (use_arena && bytes <= arena_bytes_ && !has_primary()) return true;
  if (granular()) return pick_whole_handles(bytes, [](const std::shared_ptr<StagingSlab>&) {}) == 0;  // as acquire takes them
  for (const auto& s : slabs_) {
    if (!use_arena) {
      if (s->bytes == bytes && s->unused()) return true;
      continue;
    }
    for (const auto& [offset, length] : s->free)
      if (length >= bytes) return true;
  }
  return false;
}

}  // namespace nz::rt
