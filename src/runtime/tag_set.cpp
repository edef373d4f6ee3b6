#include "runtime/tag_set.h"

#include <algorithm>
#include <cstdint>

namespace nz::rt {

AddressWindow TagSet::add(CUdeviceptr begin, CUdeviceptr end, int dtype) {
  if (begin >= end) return {begin, begin};
  auto it = tags_.upper_bound(begin);
  if (it != tags_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > begin) it = prev;
  }
  while (it != tags_.end() && it->first < end) {
    begin = std::min(begin, it->first);
    end = std::max(end, it->second.end);
    tagged_bytes_ -= it->second.end - it->first;
    it = tags_.erase(it);
  }
  tags_[begin] = Tag{end, dtype};
  tagged_bytes_ += end - begin;
  return {begin, end};
}

void TagSet::remove(CUdeviceptr begin, CUdeviceptr end) {
  if (begin >= end) return;
  auto it = tags_.upper_bound(begin);
  if (it != tags_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > begin) it = prev;
  }
  std::vector<std::pair<CUdeviceptr, Tag>> keep;
  while (it != tags_.end() && it->first < end) {
    if (it->first < begin) keep.push_back({it->first, Tag{begin, it->second.dtype}});
    if (it->second.end > end) keep.push_back({end, Tag{it->second.end, it->second.dtype}});
    tagged_bytes_ -= it->second.end - it->first;
    it = tags_.erase(it);
  }
  for (auto& [b, t] : keep) {
    tags_[b] = t;
    tagged_bytes_ += t.end - b;
  }
}

std::vector<PlannedUnit> TagSet::plan(CUdeviceptr base, size_t size, size_t page_size, size_t max_unit_bytes,
                                      AddressWindow window) const {
  const size_t max_span = max_unit_bytes == 0 ? SIZE_MAX : std::max<size_t>(1, max_unit_bytes / page_size) * page_size;
  std::vector<PlannedUnit> units;
  const CUdeviceptr limit = base + size;
  // A page that starts inside a tag ends at most one page after the tag: the
  // covered run only needs following that far (following a run of thousands
  // of adjacent small tags to its end would make planning quadratic).
  auto covered_until = [&](auto it, CUdeviceptr needed) {
    CUdeviceptr e = it->second.end;
    for (auto n = std::next(it); e < needed && n != tags_.end() && n->first == e; ++n) e = n->second.end;
    return e;
  };
  // The first tag that may own a unit beginning inside the window.
  auto it = tags_.upper_bound(window.begin);
  if (it != tags_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > window.begin) it = prev;
  }
  for (; it != tags_.end() && it->first < window.end; ++it) {
    const CUdeviceptr tag_begin = std::max<CUdeviceptr>(it->first, base);
    const CUdeviceptr tag_end = std::min<CUdeviceptr>(it->second.end, limit);
    if (tag_begin >= tag_end) continue;
    // The run covering this tag starts at or before tag_begin: a page starting
    // in the tag is covered from its first byte; check its last byte.
    const CUdeviceptr run_end = std::min<CUdeviceptr>(covered_until(it, tag_end + page_size), limit);
    const CUdeviceptr first = base + (tag_begin - base + page_size - 1) / page_size * page_size;
    // Pages [first, unit_end) start in the tag and are covered.
    CUdeviceptr unit_end = first;
    if (first < tag_end && first + page_size <= run_end) {
      auto floor_page = [&](CUdeviceptr a) { return base + (a - base) / page_size * page_size; };
      const CUdeviceptr last_start = std::min(floor_page(tag_end - 1), floor_page(run_end - page_size));
      unit_end = last_start + page_size;
    }
    if (unit_end <= first) continue;
    // Units are max_span pieces counted from the tag's first page; skip to
    // the first one that can begin inside the window.
    CUdeviceptr b = first;
    if (max_span != SIZE_MAX && window.begin > first) b = first + (window.begin - first) / max_span * max_span;
    for (; b < unit_end && b < window.end;) {
      const CUdeviceptr e = b + std::min<CUdeviceptr>(unit_end - b, max_span);
      if (b >= window.begin) units.push_back({b, e, it->second.dtype});
      b = e;
    }
  }
  return units;
}

}  // namespace nz::rt
