#include "runtime/tag_set.h"

#include <gtest/gtest.h>

#include <tuple>
#include <vector>

namespace nz::rt {
namespace {

constexpr size_t kPage = 2 << 20;
constexpr CUdeviceptr kBase = 0x7f0000000000;

TEST(TagSet, UnitOnlyForWholeCoveredPages) {
  TagSet t;
  t.add(kBase + 100, kBase + 3 * kPage, 1);
  auto plan = t.plan(kBase, 4 * kPage, kPage);
  ASSERT_EQ(plan.size(), 1u);  // page 0 is only partly covered
  EXPECT_EQ(plan[0].begin, kBase + kPage);
  EXPECT_EQ(plan[0].end, kBase + 3 * kPage);
  EXPECT_EQ(plan[0].dtype, 1);
}

TEST(TagSet, AdjacentTagsSplitPagesByFirstByte) {
  TagSet t;
  // Weight A covers page 0 and half of page 1; weight B the rest of 1 and page 2.
  t.add(kBase, kBase + kPage + kPage / 2, 0);
  EXPECT_EQ(t.plan(kBase, 4 * kPage, kPage).size(), 1u);
  t.add(kBase + kPage + kPage / 2, kBase + 3 * kPage, 3);
  auto plan = t.plan(kBase, 4 * kPage, kPage);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0], (PlannedUnit{kBase, kBase + 2 * kPage, 0}));  // page 1 starts inside A
  EXPECT_EQ(plan[1], (PlannedUnit{kBase + 2 * kPage, kBase + 3 * kPage, 3}));
}

TEST(TagSet, SmallTagsShareAPage) {
  TagSet t;
  for (int i = 0; i < 4; ++i) t.add(kBase + i * kPage / 4, kBase + (i + 1) * kPage / 4, 1);
  auto plan = t.plan(kBase, kPage, kPage);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].begin, kBase);
  EXPECT_EQ(plan[0].end, kBase + kPage);
}

TEST(TagSet, GapBreaksCoverage) {
  TagSet t;
  t.add(kBase, kBase + kPage - 512, 1);
  t.add(kBase + kPage, kBase + 2 * kPage, 1);
  auto plan = t.plan(kBase, 2 * kPage, kPage);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].begin, kBase + kPage);
}

TEST(TagSet, OverlapMergesAndRemoveSplits) {
  TagSet t;
  t.add(kBase, kBase + 100, 1);
  t.add(kBase + 50, kBase + 200, 2);
  EXPECT_EQ(t.tagged_bytes(), 200u);
  t.remove(kBase + 20, kBase + 30);
  EXPECT_EQ(t.tagged_bytes(), 190u);
  t.remove(kBase, kBase + 1000);
  EXPECT_TRUE(t.empty());
}

TEST(TagSet, ClipsToAllocation) {
  TagSet t;
  t.add(kBase, kBase + 8 * kPage, 1);
  auto plan = t.plan(kBase, 2 * kPage, kPage);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].end, kBase + 2 * kPage);
}

}  // namespace
}  // namespace nz::rt

namespace nz::rt {
namespace {

TEST(TagSet, LargeTagsSplitIntoBoundedUnits) {
  TagSet t;
  t.add(kBase, kBase + 5 * kPage, 1);
  auto plan = t.plan(kBase, 6 * kPage, kPage, 2 * kPage);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0], (PlannedUnit{kBase, kBase + 2 * kPage, 1}));
  EXPECT_EQ(plan[1], (PlannedUnit{kBase + 2 * kPage, kBase + 4 * kPage, 1}));
  EXPECT_EQ(plan[2], (PlannedUnit{kBase + 4 * kPage, kBase + 5 * kPage, 1}));
}

}  // namespace
}  // namespace nz::rt

#include <random>

namespace nz::rt {
namespace {

// The reference: every page of the allocation checked from scratch (a page is
// a unit page when tags cover all of it; it belongs to the tag holding its
// first byte; units are runs of a tag's pages, split every `span` pages
// counted from the tag's first page).
std::vector<PlannedUnit> reference_plan(const std::vector<std::tuple<CUdeviceptr, CUdeviceptr, int>>& tags,
                                        CUdeviceptr base, size_t pages, size_t page, size_t span_pages) {
  auto owner = [&](CUdeviceptr a) -> const std::tuple<CUdeviceptr, CUdeviceptr, int>* {
    for (const auto& t : tags) {
      if (std::get<0>(t) <= a && a < std::get<1>(t)) return &t;
    }
    return nullptr;
  };
  auto covered = [&](CUdeviceptr b, CUdeviceptr e) {
    CUdeviceptr at = b;
    while (at < e) {
      const auto* t = owner(at);
      if (t == nullptr) return false;
      at = std::get<1>(*t);
    }
    return true;
  };
  std::vector<PlannedUnit> out;
  for (size_t i = 0; i < pages; ++i) {
    const CUdeviceptr p = base + i * page;
    if (!covered(p, p + page)) continue;
    const auto* t = owner(p);
    const CUdeviceptr tag_first = base + (std::get<0>(*t) - base + page - 1) / page * page;
    const size_t index = (p - tag_first) / page;
    if (!out.empty() && out.back().end == p && out.back().dtype == std::get<2>(*t) && index % span_pages != 0 &&
        owner(out.back().begin) == t) {
      out.back().end = p + page;
    } else {
      out.push_back({p, p + page, std::get<2>(*t)});
    }
  }
  return out;
}

// Random tag sets (small adjacent copies, gaps, overlaps): the plan of the
// whole allocation equals the reference, and so does the union of windowed
// plans (what tagging uses to stay O(log n) per copy).
TEST(TagSet, WindowedPlansMatchAPageByPageReference) {
  constexpr size_t kSmallPage = 4096, kPages = 64;
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; ++round) {
    TagSet t;
    std::vector<std::tuple<CUdeviceptr, CUdeviceptr, int>> tags;
    const int count = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < count; ++i) {
      const CUdeviceptr b = kBase + rng() % (kPages * kSmallPage);
      const CUdeviceptr e = std::min<CUdeviceptr>(kBase + kPages * kSmallPage, b + 1 + rng() % (6 * kSmallPage));
      const int dtype = static_cast<int>(rng() % 3);
      t.add(b, e, dtype);
    }
    t.for_each([&](CUdeviceptr b, CUdeviceptr e, int d) { tags.emplace_back(b, e, d); });
    const size_t span_pages = 1 + rng() % 3;
    const auto want = reference_plan(tags, kBase, kPages, kSmallPage, span_pages);
    EXPECT_EQ(want, t.plan(kBase, kPages * kSmallPage, kSmallPage, span_pages * kSmallPage)) << "round " << round;
    std::vector<PlannedUnit> pieces;
    for (size_t w = 0; w < kPages; w += 5) {
      const AddressWindow window{kBase + w * kSmallPage, kBase + std::min(kPages, w + 5) * kSmallPage};
      auto part = t.plan(kBase, kPages * kSmallPage, kSmallPage, span_pages * kSmallPage, window);
      pieces.insert(pieces.end(), part.begin(), part.end());
    }
    EXPECT_EQ(want, pieces) << "round " << round;
  }
}

TEST(TagSet, TaggedBytesFollowAddsAndRemoves) {
  TagSet t;
  t.add(kBase, kBase + 100, 0);
  t.add(kBase + 50, kBase + 300, 1);  // overlaps: merged
  EXPECT_EQ(t.tagged_bytes(), 300u);
  t.remove(kBase + 10, kBase + 20);
  EXPECT_EQ(t.tagged_bytes(), 290u);
  t.add(kBase + 400, kBase + 500, 1);
  EXPECT_EQ(t.count(), 3u);
  EXPECT_EQ(t.tagged_bytes(), 390u);
}

}  // namespace
}  // namespace nz::rt
