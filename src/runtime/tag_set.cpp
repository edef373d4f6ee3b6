#include "runtime/tag_set.h"

#include <algorithm>
#include <cstdint>

namespace nz::rt {

void TagSet::add(CUdeviceptr begin, CUdeviceptr end, int dtype) {
  if (begin >= end) return;
  auto it = tags_.upper_bound(begin);
  if (it != tags_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end > begin) it = prev;
  }
  while (it != tags_.end() && it->first < end) {
    begin = std::min(begin, it->first);
    end = std::max(end, it->second.end);
    it = tags_.erase(it);
  }
  tags_[begin] = Tag{end, dtype};
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
    it = tags_.erase(it);
  }
  for (auto& [b, t] : keep) tags_[b] = t;
}

uint64_t TagSet::tagged_bytes() const {
  uint64_t total = 0;
  for (const auto& [b, t] : tags_) total += t.end - b;
  return total;
}

std::vector<PlannedUnit> TagSet::plan(CUdeviceptr base, size_t size, size_t page_size,
                                      size_t max_unit_bytes) const {
  const size_t max_span = max_unit_bytes == 0 ? SIZE_MAX : std::max<size_t>(1, max_unit_bytes / page_size) * page_size;
  std::vector<PlannedUnit> units;
  const CUdeviceptr limit = base + size;
  // Walk the tags in order, merging adjacent ones into covered runs, and
  // assign each whole page of a run to the tag holding its first byte.
  auto covered_until = [&](auto it) {  // end of the contiguous covered run starting at `it`
    CUdeviceptr e = it->second.end;
    for (auto n = std::next(it); n != tags_.end() && n->first == e; ++n) e = n->second.end;
    return e;
  };
  for (auto it = tags_.begin(); it != tags_.end(); ++it) {
    const CUdeviceptr tag_begin = std::max<CUdeviceptr>(it->first, base);
    const CUdeviceptr tag_end = std::min<CUdeviceptr>(it->second.end, limit);
    if (tag_begin >= tag_end) continue;
    // The run covering this tag starts at or before tag_begin: a page starting
    // in the tag is covered from its first byte; check its last byte.
    const CUdeviceptr run_end = std::min<CUdeviceptr>(covered_until(it), limit);
    CUdeviceptr first = base + (tag_begin - base + page_size - 1) / page_size * page_size;
    CUdeviceptr unit_end = first;
    for (CUdeviceptr p = first; p < tag_end && p + page_size <= run_end; p += page_size) {
      unit_end = p + page_size;
    }
    for (CUdeviceptr b = first; b < unit_end;) {
      const CUdeviceptr e = b + std::min<CUdeviceptr>(unit_end - b, max_span);
      units.push_back({b, e, it->second.dtype});
      b = e;
    }
  }
  return units;
}

}  // namespace nz::rt
