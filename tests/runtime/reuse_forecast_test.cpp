// The eviction forecast (reuse_forecast.h): which range a regular loop needs
// again last, and no forecast at all while the iterations are irregular.
#include "runtime/reuse_forecast.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace nz::rt {
namespace {

// Runs one iteration of `calls`, each call using the ranges listed (indices
// into `h`), then starts the next iteration.
void iterate(ReuseForecast& f, std::vector<UseHistory>& h, const std::vector<std::vector<int>>& calls) {
  for (const auto& call : calls) {
    f.on_call();
    for (int i : call) f.on_use(h[i]);
  }
  f.on_iteration();
}

TEST(ReuseForecast, NoForecastUntilTwoRegularIterations) {
  ReuseForecast f;
  std::vector<UseHistory> h(3);
  const std::vector<std::vector<int>> loop = {{0}, {1}, {2}};
  EXPECT_FALSE(f.regular());
  iterate(f, h, loop);
  EXPECT_FALSE(f.regular());
  EXPECT_EQ(f.calls_until_use(h[0]), ReuseForecast::kUnknown);
  iterate(f, h, loop);
  EXPECT_TRUE(f.regular());
  // An iteration twice as long: irregular, no forecast (least recently used).
  iterate(f, h, {{0}, {1}, {2}, {0}, {1}, {2}});
  EXPECT_FALSE(f.regular());
  EXPECT_EQ(f.calls_until_use(h[1]), ReuseForecast::kUnknown);
}

// Inference: every range once per iteration, in order. Halfway through, the
// range just used is needed last and the next one first (least recently
// used would evict exactly that one).
TEST(ReuseForecast, CyclicLoopNeedsTheRangeJustUsedLast) {
  ReuseForecast f;
  std::vector<UseHistory> h(8);
  std::vector<std::vector<int>> loop;
  for (int i = 0; i < 8; ++i) loop.push_back({i});
  iterate(f, h, loop);
  iterate(f, h, loop);
  for (int i = 0; i < 4; ++i) {  // calls 1-4 of the third iteration: ranges 0-3
    f.on_call();
    f.on_use(h[i]);
  }
  std::vector<uint64_t> d;
  for (auto& x : h) d.push_back(f.calls_until_use(x));
  EXPECT_EQ(d[4], 1u);  // next call
  EXPECT_EQ(d[7], 4u);
  EXPECT_EQ(d[0], 5u);  // next iteration's first call: 4 calls left in this one + 1
  EXPECT_EQ(d[3], 8u);  // just used: needed last
  EXPECT_EQ(std::max_element(d.begin(), d.end()) - d.begin(), 3);
}

// Training: forward 0..3, then backward 3..0 (each weight read again). After
// the forward the last layer's weight is needed first (least recently used
// gets that right), and the first layer's — used early — last but one.
TEST(ReuseForecast, ForwardBackwardMatchesUsesByCount) {
  ReuseForecast f;
  std::vector<UseHistory> h(4);
  const std::vector<std::vector<int>> step = {{0}, {1}, {2}, {3}, {3}, {2}, {1}, {0}};
  iterate(f, h, step);
  iterate(f, h, step);
  for (int i = 0; i < 4; ++i) {
    f.on_call();
    f.on_use(h[i]);
  }
  // Now after call 4 (range 3's forward). Range 3's second use was call 5.
  EXPECT_EQ(f.calls_until_use(h[3]), 1u);
  EXPECT_EQ(f.calls_until_use(h[2]), 2u);
  EXPECT_EQ(f.calls_until_use(h[0]), 4u);
  // Range 3 used twice now (calls 4 and 5): next at the next iteration's call 4.
  f.on_call();
  f.on_use(h[3]);
  EXPECT_EQ(f.calls_until_use(h[3]), 3u + 4u);
}

// A few calls more in this iteration than the last: a use that is overdue
// (matched by count, it should have come already) is forecast for now, not
// for the next iteration.
TEST(ReuseForecast, OverdueUseIsNeededNow) {
  ReuseForecast f;
  std::vector<UseHistory> h(3);
  std::vector<std::vector<int>> loop(16);
  loop[0] = {0};
  loop[1] = {1};
  loop[3] = {2};
  iterate(f, h, loop);
  iterate(f, h, loop);
  f.on_call();
  f.on_use(h[0]);
  f.on_call();  // an extra call with nothing tracked
  f.on_call();
  f.on_call();
  f.on_call();  // call 5: range 1 was used at call 2 last time and not yet now
  EXPECT_EQ(f.calls_until_use(h[1]), 1u);
  EXPECT_EQ(f.calls_until_use(h[2]), 1u);
}

// An iteration running on past the last one's length by more than 1/8 (a
// program reading its weights back after its last step) is not the loop:
// no forecast, rather than every range overdue.
TEST(ReuseForecast, IterationRunningPastTheLastIsIrregular) {
  ReuseForecast f;
  std::vector<UseHistory> h(2);
  const std::vector<std::vector<int>> loop = {{0}, {}, {}, {}, {}, {}, {}, {1}};
  iterate(f, h, loop);
  iterate(f, h, loop);
  for (int i = 0; i < 9; ++i) f.on_call();  // 8 calls + 1/8: still the loop
  EXPECT_TRUE(f.regular());
  EXPECT_NE(f.calls_until_use(h[1]), ReuseForecast::kUnknown);
  f.on_call();
  EXPECT_FALSE(f.regular());
  EXPECT_EQ(f.calls_until_use(h[1]), ReuseForecast::kUnknown);
  f.on_iteration();  // 10 calls against 8: more than 1/8 apart
  EXPECT_FALSE(f.regular());
}

// A range used more often than the uses recorded (UseHistory::kKept): past
// its last recorded use it is still needed in this iteration, soon — not at
// the next one (which made it the first range evicted, then restaged a few
// calls later, every step).
TEST(ReuseForecast, RangeUsedMoreThanRecordedIsNeededAgainSoon) {
  ReuseForecast f;
  std::vector<UseHistory> h(2);
  // Range 0 at every second call of the first 16 (8 uses), range 1 once at the end.
  std::vector<std::vector<int>> loop(24);
  for (int c = 0; c < 16; c += 2) loop[c] = {0};
  loop[23] = {1};
  iterate(f, h, loop);
  iterate(f, h, loop);
  for (int c = 0; c < 9; ++c) {  // five uses of range 0 (calls 0, 2, 4, 6, 8)
    f.on_call();
    for (int i : loop[c]) f.on_use(h[i]);
  }
  static_assert(UseHistory::kKept < 5, "the test needs more uses than are kept");
  const uint64_t d0 = f.calls_until_use(h[0]), d1 = f.calls_until_use(h[1]);
  EXPECT_LE(d0, 2u) << "its sixth use is two calls away";
  EXPECT_GT(d1, d0) << "range 1, needed at the end, goes first";
  // One call touching it twice past its recorded uses is one use (the count
  // decides when it is "used as often as last time").
  f.on_call();  // loop[9]: nothing tracked
  f.on_call();  // loop[10]: range 0, through two pointers
  f.on_use(h[0]);
  f.on_use(h[0]);
  EXPECT_EQ(h[0].uses, 6);
  for (int c = 11; c < 16; ++c) {
    f.on_call();
    for (int i : loop[c]) f.on_use(h[i]);
  }
  EXPECT_EQ(h[0].uses, 8);
  // Once used as often as last time, its next use is the next iteration's first.
  EXPECT_EQ(f.calls_until_use(h[0]), 24u - 16u + 1u);
}

TEST(ReuseForecast, RangeNotUsedLastIterationIsNotSoon) {
  ReuseForecast f;
  std::vector<UseHistory> h(3);
  iterate(f, h, {{0, 2}, {1}});
  iterate(f, h, {{0, 2}, {1}});
  iterate(f, h, {{0}, {1}});  // range 2 not used
  f.on_call();
  EXPECT_EQ(f.calls_until_use(h[2]), ReuseForecast::kNotSoon);
  EXPECT_LT(f.calls_until_use(h[1]), ReuseForecast::kNotSoon);
}

// One call using a range twice (two pointers into it) is one use.
TEST(ReuseForecast, OneCallOneUse) {
  ReuseForecast f;
  std::vector<UseHistory> h(2);
  const std::vector<std::vector<int>> loop = {{0, 0}, {1}, {0}};
  iterate(f, h, loop);
  iterate(f, h, loop);
  f.on_call();
  f.on_use(h[0]);
  f.on_use(h[0]);
  EXPECT_EQ(f.calls_until_use(h[0]), 2u);  // its second use, call 3
}

}  // namespace
}  // namespace nz::rt
