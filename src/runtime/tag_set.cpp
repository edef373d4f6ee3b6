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
  auto floor_page = [&](CUdeviceptr a) { return base + (a - base) / page_size * page_size; };
  // The first tag that may own a unit beginning inside the window.
  auto it = tags_.upper_bound(window.begin);
  if (it != tags_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > window.begin) it = prev;
  }
  // The covered run through the current tag, extended lazily: `run_last` is
  // the last tag merged into it, `run_end` its end. It only moves forward, so
  // a page's worth of small adjacent tags costs O(n), not O(n^2).
  auto run_last = it;
  CUdeviceptr run_end = it != tags_.end() ? it->second.end : 0;
  for (; it != tags_.end() && it->first < window.end; ++it) {
    const CUdeviceptr tag_begin = std::max<CUdeviceptr>(it->first, base);
    const CUdeviceptr tag_end = std::min<CUdeviceptr>(it->second.end, limit);
    if (it->first >= run_end || run_last->first < it->first) {  // the run broke before this tag
      run_last = it;
      run_end = it->second.end;
    }
    if (tag_begin >= tag_end) continue;
    // A page that starts inside the tag ends at most one page after it.
    for (auto n = std::next(run_last); run_end < tag_end + page_size && n != tags_.end() && n->first == run_end; ++n) {
      run_last = n;
      run_end = n->second.end;
    }
    const CUdeviceptr covered = std::min<CUdeviceptr>(run_end, limit);
    const CUdeviceptr first = base + (tag_begin - base + page_size - 1) / page_size * page_size;
    // Pages [first, unit_end) start in the tag and are covered.
    if (first >= tag_end || first + page_size > covered) continue;
    const CUdeviceptr unit_end = std::min(floor_page(tag_end - 1), floor_page(covered - page_size)) + page_size;
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
