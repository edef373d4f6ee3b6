// Pin ownership of captures, graphs and executable graphs (no driver needed:
// the handles are only keys).
#include "runtime/graph_pins.h"

#include <gtest/gtest.h>

namespace nz::rt {
namespace {

template <typename Handle>
Handle handle(uintptr_t v) {
  return reinterpret_cast<Handle>(v);
}

struct GraphPinsTest : ::testing::Test {
  GraphPins pins;
  std::shared_ptr<Unit> a = std::make_shared<Unit>(), b = std::make_shared<Unit>();
  CUstream s = handle<CUstream>(0x10);
  CUgraph g = handle<CUgraph>(0x20);
  CUgraphExec e1 = handle<CUgraphExec>(0x30), e2 = handle<CUgraphExec>(0x40);
  GraphPins::Units unpinned;

  void capture_a_and_b_into_g() {
    pins.begin_capture(s);
    EXPECT_TRUE(pins.note_use(s, a));
    EXPECT_TRUE(pins.note_use(s, b));
    EXPECT_TRUE(pins.note_use(s, a));  // used twice by one capture: one pin
    pins.end_capture(s, g, unpinned);
  }
};

TEST_F(GraphPinsTest, CaptureHoldsOnePinPerUnitUntilTheGraphGoes) {
  capture_a_and_b_into_g();
  EXPECT_EQ(a->pins, 1);
  EXPECT_EQ(b->pins, 1);
  EXPECT_EQ(pins.open_captures(), 0u);
  EXPECT_TRUE(unpinned.empty());
  pins.destroy_graph(g, unpinned);
  EXPECT_EQ(a->pins, 0);
  EXPECT_EQ(b->pins, 0);
  EXPECT_EQ(unpinned.size(), 2u);
}

TEST_F(GraphPinsTest, ExecsOutliveTheirGraph) {
  capture_a_and_b_into_g();
  pins.instantiate(e1, g, unpinned);
  pins.instantiate(e2, g, unpinned);
  EXPECT_EQ(a->pins, 3);
  ASSERT_NE(pins.units_of(e1), nullptr);
  EXPECT_EQ(pins.units_of(e1)->size(), 2u);
  pins.destroy_graph(g, unpinned);
  EXPECT_EQ(a->pins, 2);
  EXPECT_TRUE(unpinned.empty());
  pins.destroy_exec(e1, unpinned);
  EXPECT_EQ(a->pins, 1);
  EXPECT_EQ(pins.units_of(e1), nullptr);
  EXPECT_TRUE(unpinned.empty());
  pins.destroy_exec(e2, unpinned);
  EXPECT_EQ(a->pins, 0);
  EXPECT_EQ(b->pins, 0);
  EXPECT_EQ(unpinned.size(), 2u);
  EXPECT_EQ(pins.graphs() + pins.execs(), 0u);
}

TEST_F(GraphPinsTest, FailedCaptureReleasesItsPins) {
  pins.begin_capture(s);
  pins.note_use(s, a);
  pins.end_capture(s, nullptr, unpinned);
  EXPECT_EQ(a->pins, 0);
  EXPECT_EQ(unpinned.size(), 1u);
  EXPECT_EQ(pins.graphs(), 0u);
}

TEST_F(GraphPinsTest, CaptureIntoAnExistingGraphAddsToIt) {
  capture_a_and_b_into_g();
  pins.begin_capture(s);
  pins.note_use(s, a);
  pins.end_capture(s, g, unpinned);  // a again: the graph already holds its pin
  EXPECT_EQ(a->pins, 1);
  EXPECT_TRUE(unpinned.empty());
  pins.destroy_graph(g, unpinned);
  EXPECT_EQ(a->pins, 0);
}

TEST_F(GraphPinsTest, UseOnAStreamWithoutACapturePinsForGood) {
  EXPECT_FALSE(pins.note_use(s, a));
  EXPECT_EQ(a->pins, 1);
  pins.destroy_graph(g, unpinned);
  EXPECT_EQ(a->pins, 1);
}

// A stream forked into the capture begun on `s` (same sequence id) pins
// for that capture; once it ended, the id names nothing (a later use with it
// pins for good), and another capture's id never takes its uses.
TEST_F(GraphPinsTest, UseOnAForkedStreamGoesToItsCapture) {
  const CUstream forked = handle<CUstream>(0x11);
  pins.begin_capture(s, 7);
  EXPECT_FALSE(pins.recording(forked));
  EXPECT_TRUE(pins.note_use(forked, a, 7));
  EXPECT_TRUE(pins.note_use(forked, a, 7));  // one pin per holder
  EXPECT_FALSE(pins.note_use(forked, b, 8));  // another capture's id: no record, for good
  pins.end_capture(s, g, unpinned);
  EXPECT_EQ(a->pins, 1);
  pins.destroy_graph(g, unpinned);
  EXPECT_EQ(a->pins, 0);
  EXPECT_EQ(b->pins, 1);
  EXPECT_FALSE(pins.note_use(forked, a, 7));  // that capture ended
  EXPECT_EQ(a->pins, 1);
}

TEST_F(GraphPinsTest, UnknownHandlesAreIgnored) {
  pins.instantiate(e1, g, unpinned);  // a graph we did not see captured
  EXPECT_EQ(pins.units_of(e1), nullptr);
  pins.destroy_exec(e1, unpinned);
  pins.end_capture(s, g, unpinned);
  EXPECT_TRUE(unpinned.empty());
}

}  // namespace
}  // namespace nz::rt
