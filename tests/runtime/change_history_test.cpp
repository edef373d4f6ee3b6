// change_history_test.cpp: whether a staged range is expected to be written
// before its next eviction (rewrite_policy.h ChangeHistory), which decides
// whether its store is given up while staged.
#include "runtime/rewrite_policy.h"

#include <gtest/gtest.h>

namespace nz::rt {
namespace {

TEST(ChangeHistory, NothingSeenExpectsNoChange) {
  ChangeHistory h;
  EXPECT_FALSE(h.expect_change(0));
}

// Without iterations (or before a whole one was seen) the latest outcome decides.
TEST(ChangeHistory, WithinOneIterationTheLatestOutcomeDecides) {
  ChangeHistory h;
  h.note(true, 5);
  EXPECT_TRUE(h.expect_change(5));
  h.note(false, 5);
  EXPECT_FALSE(h.expect_change(5));
  h.note(true, 5);
  EXPECT_TRUE(h.expect_change(5));
}

// A weight read in the forward pass (evicted unchanged) and staged again for
// the backward pass and its update (evicted changed), every step: each
// staging expects what the same staging found one step before, not what
// the other one just found.
TEST(ChangeHistory, ForwardReadAndBackwardWriteAlternate) {
  ChangeHistory h;
  uint64_t step = 0;
  h.note(false, step);  // forward of step 0
  h.note(true, step);   // backward of step 0
  ++step;
  // Staged for the forward pass of step 1 (no eviction in it yet): the
  // forward eviction of step 0 found it unchanged.
  EXPECT_FALSE(h.expect_change(step));
  h.note(false, step);
  // Staged for the backward pass: its update wrote it last step.
  EXPECT_TRUE(h.expect_change(step));
  h.note(true, step);
  for (++step; step < 6; ++step) {
    EXPECT_FALSE(h.expect_change(step)) << step;
    h.note(false, step);
    EXPECT_TRUE(h.expect_change(step)) << step;
    h.note(true, step);
  }
}

// A weight rewritten at its only eviction of every step, and one never
// written: as before, changed and unchanged.
TEST(ChangeHistory, OneEvictionPerIteration) {
  ChangeHistory written, read;
  for (uint64_t step = 0; step < 4; ++step) {
    written.note(true, step);
    read.note(false, step);
  }
  EXPECT_TRUE(written.expect_change(4));
  EXPECT_FALSE(read.expect_change(4));
  EXPECT_TRUE(written.expect_change(3));
  EXPECT_FALSE(read.expect_change(3));
}

// Iterations with more evictions than the history holds: the latest outcome.
TEST(ChangeHistory, MoreEvictionsPerIterationThanRemembered) {
  ChangeHistory h;
  for (int i = 0; i < 40; ++i) h.note(i % 2 == 0, 0);
  for (int i = 0; i < 40; ++i) h.note(i % 2 == 0, 1);
  EXPECT_FALSE(h.expect_change(2));  // the latest: i = 39, unchanged
  h.note(true, 2);
  EXPECT_TRUE(h.expect_change(2));
}

}  // namespace
}  // namespace nz::rt
