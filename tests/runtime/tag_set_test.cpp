#include "runtime/tag_set.h"

#include <gtest/gtest.h>

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
