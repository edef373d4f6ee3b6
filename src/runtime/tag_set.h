// tag_set.h: the tagged byte ranges of one managed allocation, and which of
// its pages can be compressed.
//
// A page is compressible only when tags cover all of it (a caching allocator
// puts weights and activations side by side; a page shared with untagged data
// must stay resident). Compressible pages are grouped into units, one per tag:
// a page belongs to the tag that holds its first byte. So a unit is decoded as
// one buffer when one weight is touched, without pulling in its neighbours.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace nz::rt {

struct PlannedUnit {
  CUdeviceptr begin;
  CUdeviceptr end;  // exclusive, page aligned
  int dtype;        // NZ_TAG_* of the tag that owns the unit
  bool operator==(const PlannedUnit&) const = default;
};

class TagSet {
 public:
  // Tags [begin, end). An overlapped tag is merged into the new one (the new
  // dtype wins): a re-copy into part of a weight keeps it one range.
  void add(CUdeviceptr begin, CUdeviceptr end, int dtype);
  // Removes [begin, end) from the tags (splitting a tag that straddles it).
  void remove(CUdeviceptr begin, CUdeviceptr end);
  bool empty() const { return tags_.empty(); }
  uint64_t tagged_bytes() const;
  // fn(begin, end, dtype) for every tag in address order.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [b, t] : tags_) fn(b, t.end, t.dtype);
  }
  // The units of whole pages of [base, base + size) (page_size aligned) fully
  // covered by tags, each at most `max_unit_bytes` (0 = no limit): a bound on
  // the scratch memory one compression needs and on one decode's size.
  std::vector<PlannedUnit> plan(CUdeviceptr base, size_t size, size_t page_size,
                                size_t max_unit_bytes = 0) const;

 private:
  struct Tag {
    CUdeviceptr end;
    int dtype;
  };
  std::map<CUdeviceptr, Tag> tags_;  // by begin; never overlapping
};

}  // namespace nz::rt
