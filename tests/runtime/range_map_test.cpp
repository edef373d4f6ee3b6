#include "runtime/range_map.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace nz::rt {
namespace {

TEST(RangeMap, FindsContainingEntryOnly) {
  RangeMap<int> m;
  EXPECT_TRUE(m.empty());
  m.insert(1000, 2000, std::make_shared<int>(1));
  m.insert(3000, 3500, std::make_shared<int>(2));
  m.insert(100, 200, std::make_shared<int>(0));
  EXPECT_EQ(m.size(), 3u);
  auto s = m.snapshot();
  EXPECT_EQ(RangeMap<int>::find(*s, 99), nullptr);
  EXPECT_EQ(*RangeMap<int>::find(*s, 100)->value, 0);
  EXPECT_EQ(RangeMap<int>::find(*s, 200), nullptr);  // end is exclusive
  EXPECT_EQ(*RangeMap<int>::find(*s, 1999)->value, 1);
  EXPECT_EQ(*RangeMap<int>::find(*s, 3000)->value, 2);
  EXPECT_EQ(RangeMap<int>::find(*s, 2500), nullptr);
  EXPECT_EQ(RangeMap<int>::find(*s, 9999), nullptr);
}

TEST(RangeMap, OverlapQueryAndErase) {
  RangeMap<int> m;
  m.insert(0, 10, std::make_shared<int>(0));
  m.insert(10, 20, std::make_shared<int>(1));
  m.insert(30, 40, std::make_shared<int>(2));
  std::vector<int> hit;
  RangeMap<int>::for_each_overlapping(*m.snapshot(), 5, 31, [&](const auto& e) { hit.push_back(*e.value); });
  EXPECT_EQ(hit, (std::vector<int>{0, 1, 2}));
  hit.clear();
  RangeMap<int>::for_each_overlapping(*m.snapshot(), 20, 30, [&](const auto& e) { hit.push_back(*e.value); });
  EXPECT_TRUE(hit.empty());
  auto old = m.snapshot();
  EXPECT_TRUE(m.erase(10));
  EXPECT_FALSE(m.erase(10));
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(RangeMap<int>::find(*m.snapshot(), 15), nullptr);
  EXPECT_NE(RangeMap<int>::find(*old, 15), nullptr);  // an old snapshot stays valid
}

TEST(RangeMap, ReadersSeeConsistentSnapshotsWhileWritersChange) {
  RangeMap<int> m;
  std::atomic<bool> stop{false};
  std::atomic<long> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto s = m.snapshot();
        for (size_t i = 1; i < s->size(); ++i) if ((*s)[i - 1].end > (*s)[i].begin) ++bad;
        if (auto* e = RangeMap<int>::find(*s, 5005); e != nullptr && *e->value != 5) ++bad;
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 10; ++i) m.insert(i * 1000, i * 1000 + 10, std::make_shared<int>(i));
    for (int i = 0; i < 10; ++i) m.erase(i * 1000);
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_TRUE(m.empty());
}

// A launch that finds the map empty takes no snapshot and no lock: empty()
// alone must order it after what the writer did before emptying the map (the
// look-ahead stager waits for an encode that read a range, then retires the
// range, the last one tracked; a launch that then writes it must come after
// that wait). A ThreadSanitizer check (tools/test-tsan.sh): with a relaxed
// load TSan reports `payload` raced in every run; a plain build passes either
// way on x86, whose loads all acquire.
TEST(RangeMap, FoundEmptyOrdersWhatTheWriterDidBeforeEmptyingIt) {
  for (int round = 0; round < 20; ++round) {
    RangeMap<int> m;
    m.insert(1000, 2000, std::make_shared<int>(1));
    int payload = 0;  // plain memory: what the encode read, the launch writes
    std::thread writer([&] {
      payload = 42;
      m.erase(1000);
    });
    while (!m.empty()) std::this_thread::yield();
    EXPECT_EQ(payload, 42);
    payload = 7;
    writer.join();
  }
}

}  // namespace
}  // namespace nz::rt

#include "runtime/prefetch.h"

namespace nz::rt {
namespace {

TEST(StagingOrder, PredictsWhatFollowedLastTime) {
  StagingOrder<int> order;
  auto a = std::make_shared<int>(1), b = std::make_shared<int>(2), c = std::make_shared<int>(3);
  EXPECT_EQ(order.record(a), nullptr);  // first iteration: no history
  EXPECT_EQ(order.record(b), nullptr);
  EXPECT_EQ(order.record(c), nullptr);
  EXPECT_EQ(order.record(a), b);  // second iteration: after a came b
  EXPECT_EQ(order.record(b), c);
  EXPECT_EQ(order.record(c), a);
  b.reset();
  EXPECT_EQ(order.record(a), nullptr);  // b is gone
}

// A training step stages a weight in the forward pass, the backward pass and
// the update, followed each time by another weight: its k-th staging is
// matched with its k-th staging in the last iteration, not its latest.
TEST(StagingOrder, MatchesTheKthStagingOfTheLastIteration) {
  StagingOrder<int> order;
  auto a = std::make_shared<int>(1), b = std::make_shared<int>(2), c = std::make_shared<int>(3);
  auto d = std::make_shared<int>(4);
  // forward a b c, backward b a, update a b c (c stayed staged in between)
  const std::vector<std::shared_ptr<int>> step{a, b, c, b, a, d, a, b, c};
  for (const auto& x : step) order.record(x);
  order.on_iteration();
  std::vector<std::shared_ptr<int>> guesses;
  for (const auto& x : step) guesses.push_back(order.record(x));
  // Each guess is what followed the same staging last time; the last one is
  // the first staging of this iteration (a: after the update comes the forward).
  const std::vector<std::shared_ptr<int>> want{b, c, b, a, d, a, b, c, a};
  EXPECT_EQ(guesses, want);
  // Matched with its latest staging (its update's), c's forward staging would
  // be guessed to be followed by the next iteration's a, not by b.
  order.on_iteration();
  EXPECT_EQ(order.record(a), b);
  EXPECT_EQ(order.record(b), c);
  EXPECT_EQ(order.record(c), b);  // its forward staging: backward's b came next
}

// With no iteration marks (a program that copies nothing to the device
// between steps) or more stagings than last time, the latest staging is used.
TEST(StagingOrder, FallsBackToTheLatestStaging) {
  StagingOrder<int> order;
  auto a = std::make_shared<int>(1), b = std::make_shared<int>(2), c = std::make_shared<int>(3);
  order.record(a);
  order.record(b);
  order.record(a);
  order.record(c);
  EXPECT_EQ(order.record(a), c);  // no iteration: after a's latest staging came c
  order.on_iteration();
  EXPECT_EQ(order.record(a), b);        // after its first staging of the last iteration
  EXPECT_EQ(order.record(a), c);        // after its second
  EXPECT_EQ(order.record(a), nullptr);  // after its third came a itself
  order.record(c);
  EXPECT_EQ(order.record(a), c);  // a fourth: more than last time, so after its latest staging
  // Skipped an iteration: nothing to match, the latest staging again.
  order.on_iteration();
  order.on_iteration();
  EXPECT_EQ(order.record(c), a);
}

TEST(StagingOrder, AfterTellsWithoutRecording) {
  StagingOrder<int> order;
  auto a = std::make_shared<int>(1), b = std::make_shared<int>(2), c = std::make_shared<int>(3);
  order.record(a);
  EXPECT_EQ(order.after(a.get()), nullptr);  // nothing after it yet
  order.record(b);
  EXPECT_EQ(order.after(a.get()), b);
  EXPECT_EQ(order.after(a.get()), b);  // asking again records nothing
  EXPECT_EQ(order.after(c.get()), nullptr);  // never staged
  order.record(c);
  order.record(a);
  EXPECT_EQ(order.after(a.get()), nullptr);  // its last staging is the newest
  EXPECT_EQ(order.after(c.get()), a);
  a.reset();
  EXPECT_EQ(order.after(c.get()), nullptr);  // a is gone
}

}  // namespace
}  // namespace nz::rt
