// The guess from uses (use_order.h): what the calls of the last iteration
// touched, visited from the call after the current one, wrapping into the
// next iteration; nothing before an iteration was recorded whole.
#include "runtime/use_order.h"

#include <gtest/gtest.h>

#include <memory>
#include <utility>
#include <vector>

namespace nz::rt {
namespace {

using Seen = std::vector<std::pair<uint64_t, int>>;

Seen visit_after(const UseOrder<int>& order, uint32_t call, size_t at_most = 100) {
  Seen seen;
  order.for_each_after(call, [&](uint64_t key, const std::shared_ptr<int>& item) {
    seen.emplace_back(key, *item);
    return seen.size() < at_most;
  });
  return seen;
}

TEST(UseOrder, NothingUntilAWholeIterationWasRecorded) {
  UseOrder<int> order;
  auto a = std::make_shared<int>(1);
  order.on_use(a, 1, false);  // before the first iteration mark: not an iteration
  order.on_iteration();
  EXPECT_FALSE(order.known());
  EXPECT_TRUE(visit_after(order, 0).empty());
  order.on_use(a, 1, false);
  order.on_iteration();
  EXPECT_TRUE(order.known());
  EXPECT_EQ(visit_after(order, 0), (Seen{{1, 1}}));
}

TEST(UseOrder, VisitsLaterCallsThenWrapsIntoTheNextIteration) {
  UseOrder<int> order;
  std::vector<std::shared_ptr<int>> w;
  for (int i = 0; i < 4; ++i) w.push_back(std::make_shared<int>(i));
  order.on_iteration();
  // Calls 1..4 use w0..w3; call 3 also touches w0 (a training step's update).
  order.on_use(w[0], 1, false);
  order.on_use(w[1], 2, false);
  order.on_use(w[2], 3, false);
  order.on_use(w[0], 3, true);
  order.on_use(w[3], 4, false);
  order.on_iteration();
  EXPECT_TRUE(order.repeats());
  // From call 2: calls 3 and 4, then the next iteration's calls 1 and 2.
  const uint64_t wrap = uint64_t{1} << 32;
  EXPECT_EQ(visit_after(order, 2), (Seen{{3, 2}, {3, 0}, {4, 3}, {wrap + 1, 0}, {wrap + 2, 1}}));
  // The visitor stops the walk.
  EXPECT_EQ(visit_after(order, 2, 2), (Seen{{3, 2}, {3, 0}}));
  // Items gone since are skipped.
  w[3].reset();
  EXPECT_EQ(visit_after(order, 3), (Seen{{wrap + 1, 0}, {wrap + 2, 1}, {wrap + 3, 2}, {wrap + 3, 0}}));
}

// One whole iteration of two calls, each using its own range once.
void two_calls(UseOrder<int>& order, const std::shared_ptr<int>& a, const std::shared_ptr<int>& b) {
  order.on_iteration();
  order.on_use(a, 1, false);
  order.on_use(b, 2, false);
  order.on_iteration();
}

TEST(UseOrder, AnIterationUsingEachRangeOnceDoesNotRepeat) {
  UseOrder<int> order;
  auto a = std::make_shared<int>(1), b = std::make_shared<int>(2);
  two_calls(order, a, b);
  EXPECT_FALSE(order.repeats());
  EXPECT_TRUE(order.known());
}

TEST(UseOrder, AnIterationOverTheCapIsNotUsedTheNextOneIs) {
  UseOrder<int> order;
  auto a = std::make_shared<int>(1);
  order.on_iteration();
  for (size_t i = 0; i <= UseOrder<int>::kMaxEntries; ++i) order.on_use(a, static_cast<uint32_t>(i), false);
  order.on_iteration();
  EXPECT_FALSE(order.known()) << "an iteration recorded in part was taken as the pattern";
  EXPECT_TRUE(visit_after(order, 0).empty());
  order.on_use(a, 1, false);
  order.on_use(a, 5, true);
  order.on_iteration();
  EXPECT_TRUE(order.known());
  EXPECT_TRUE(order.repeats());
  EXPECT_EQ(order.size(), 2u);
}

TEST(UseOrder, FromPastTheLastCallEverythingIsTheNextIteration) {
  UseOrder<int> order;
  auto a = std::make_shared<int>(1), b = std::make_shared<int>(2);
  two_calls(order, a, b);
  const uint64_t wrap = uint64_t{1} << 32;
  EXPECT_EQ(visit_after(order, 7), (Seen{{wrap + 1, 1}, {wrap + 2, 2}}));
}

}  // namespace
}  // namespace nz::rt
