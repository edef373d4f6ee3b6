// vmmprobe (VMMPROBE_EXE) on the simulated driver (LD_LIBRARY_PATH from nzsim_env):
// the JSON has every call's timing for each run length, the offsets, and the
// unmap-stall verdict; the table names the same things. The simulator's
// numbers mean nothing, so only presence and consistency are checked.
#include <gtest/gtest.h>

#include "util/json_value.h"
#include "tool_run.h"

namespace {

using nztools::test::run_command;

std::string vmmprobe() { return VMMPROBE_EXE; }

TEST(Vmmprobe, JsonHasEveryCallForEveryRunLength) {
  const auto r = run_command(vmmprobe() + " --max-pages 5 --repeat 2 --stall-mb 8 --stall-ms 5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  nz::util::json::ParseError err;
  auto doc = nz::util::json::parse(r.out, &err);
  ASSERT_TRUE(doc) << err.message << " at " << err.offset << "\n" << r.out;
  const uint64_t page = doc->find("page_bytes")->as_u64().value_or(0);
  EXPECT_GE(page, 2u << 20);
  EXPECT_EQ(page % doc->find("granularity_bytes")->as_u64().value_or(1), 0u);
  const auto* runs = doc->find("runs");
  ASSERT_TRUE(runs && runs->is_array());
  // 1, 2, 4 and the maximum 5 itself.
  const uint64_t expected_pages[] = {1, 2, 4, 5};
  ASSERT_EQ(runs->items.size(), 4u);
  const bool offsets = doc->find("offsets_supported")->boolean;
  for (size_t i = 0; i < 4; ++i) {
    const auto& run = runs->items[i];
    EXPECT_EQ(run.find("pages")->as_u64(), expected_pages[i]);
    EXPECT_EQ(run.find("bytes")->as_u64(), expected_pages[i] * page);
    for (const char* k : {"create_us", "release_us", "map_us", "set_access_us", "unmap_us"}) {
      const auto* v = run.find(k);
      ASSERT_TRUE(v && v->is_number()) << "runs[" << i << "] lacks " << k;
      EXPECT_GE(*v->as_double(), 0.0);
    }
    // Each run maps a handle of exactly its size (what every driver maps).
    EXPECT_EQ(run.find("offset_bytes")->as_u64(), 0u);
  }
  // The simulator maps whole handles only, as the H200's driver does.
  EXPECT_FALSE(offsets);
  const auto* stall = doc->find("unmap_stall");
  ASSERT_TRUE(stall && stall->is_object());
  for (const char* k : {"work_ms", "idle_unmap_us", "unmap_us"}) EXPECT_TRUE(stall->find(k) && stall->find(k)->is_number()) << k;
  const auto* waits = stall->find("unmap_waits_for_other_streams");
  ASSERT_TRUE(waits && waits->kind == nz::util::json::Kind::Bool);
}

TEST(Vmmprobe, TableNamesEveryCallAndTheStallVerdict) {
  const auto r = run_command(vmmprobe() + " --max-pages 3 --repeat 1 --stall-mb 8 --stall-ms 5");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* word : {"create", "release", "map", "set_access", "unmap", "unmap stall:"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << "\n" << r.out;
}

TEST(Vmmprobe, StallCheckCanBeSkipped) {
  const auto r = run_command(vmmprobe() + " --max-pages 1 --repeat 1 --stall-mb 0 --json");
  ASSERT_EQ(r.exit_code, 0);
  auto doc = nz::util::json::parse(r.out, nullptr);
  ASSERT_TRUE(doc);
  EXPECT_TRUE(doc->find("unmap_stall")->is_null());
}

TEST(Vmmprobe, BadUsageExitsTwo) {
  EXPECT_EQ(run_command(vmmprobe() + " --max-pages 0").exit_code, 2);
  EXPECT_EQ(run_command(vmmprobe() + " --bogus").exit_code, 2);
}

}  // namespace
