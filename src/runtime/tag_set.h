// tag_set.h: the tagged byte ranges of one managed allocation, and which of
// its pages can be compressed.
//
// A page is compressible only when tags cover all of it (a caching allocator
// puts weights and activations side by side; a page shared with untagged data
// must stay resident). Compressible pages are grouped into units, one per tag:
// a page belongs to the tag that holds its first byte. So a unit is decoded as
// one buffer when one weight is touched, without pulling in its neighbours.
//
// Cost: a loader may fill one arena with thousands of small copies, each a
// tag. add/remove are O(log n + tags merged); plan over a window visits only
// the tags near it, so tagging stays O(log n) per copy (not O(n)).
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

// A byte range [begin, end).
struct AddressWindow {
  CUdeviceptr begin = 0;
  CUdeviceptr end = ~CUdeviceptr{0};
};

class TagSet {
 public:
  // Tags [begin, end). An overlapped tag is merged into the new one (the new
  // dtype wins): a re-copy into part of a weight keeps it one range. Returns
  // the extent of the merged tag (what a replan must look at).
  AddressWindow add(CUdeviceptr begin, CUdeviceptr end, int dtype);
  // Removes [begin, end) from the tags (splitting a tag that straddles it).
  void remove(CUdeviceptr begin, CUdeviceptr end);
  bool empty() const { return tags_.empty(); }
  size_t count() const { return tags_.size(); }
  uint64_t tagged_bytes() const { return tagged_bytes_; }
  // The tag holding `p` (an empty window {0, 0} if none).
  AddressWindow tag_at(CUdeviceptr p) const {
    auto it = tags_.upper_bound(p);
    if (it == tags_.begin()) return {0, 0};
    --it;
    return p < it->second.end ? AddressWindow{it->first, it->second.end} : AddressWindow{0, 0};
  }
  // fn(begin, end, dtype) for every tag in address order.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [b, t] : tags_) fn(b, t.end, t.dtype);
  }
  // The units of whole pages of [base, base + size) (page_size aligned) fully
  // covered by tags, each at most `max_unit_bytes` (0 = no limit): a bound on
  // the scratch memory one compression needs and on one decode's size.
  // With a window, only the units that begin inside it (page-aligned
  // outwards by the caller) are returned; they are the same units a plan of
  // the whole allocation returns there.
  std::vector<PlannedUnit> plan(CUdeviceptr base, size_t size, size_t page_size, size_t max_unit_bytes = 0,
                                AddressWindow window = {}) const;

 private:
  struct Tag {
    CUdeviceptr end;
    int dtype;
  };
  std::map<CUdeviceptr, Tag> tags_;  // by begin; never overlapping
  uint64_t tagged_bytes_ = 0;
};

}  // namespace nz::rt
