// nzbench --gpu (NZBENCH_EXE) on the simulated driver: the "gpu" section of
// the JSON has every figure for every set and size, says it ran on the
// simulator, and verified bit-exact against the CPU codec. The timings are
// the host's and are not checked beyond being positive.
#include <gtest/gtest.h>

#include <string>

#include "util/json_value.h"
#include "tool_run.h"

#ifndef NZTOOLS_WEIGHTS_DIR
#define NZTOOLS_WEIGHTS_DIR "../shared/weights"
#endif

namespace {

using nztools::test::run_command;

void expect_gpu_section(const std::string& out, size_t expected_entries, uint64_t first_mb) {
  nz::util::json::ParseError err;
  auto doc = nz::util::json::parse(out, &err);
  ASSERT_TRUE(doc) << err.message << " at " << err.offset << "\n" << out;
  const auto* gpu = doc->find("gpu");
  ASSERT_TRUE(gpu && gpu->is_object()) << out;
  EXPECT_EQ(gpu->find("backend")->text, "simulator");
  EXPECT_TRUE(gpu->find("simulator")->boolean);
  const auto* sets = gpu->find("sets");
  ASSERT_TRUE(sets && sets->is_array());
  ASSERT_EQ(sets->items.size(), expected_entries);
  for (const auto& s : sets->items) {
    for (const char* k : {"decode_gbps", "encode_gbps", "d2d_copy_gbps", "decode_vs_copy", "encode_vs_copy", "ratio"}) {
      const auto* v = s.find(k);
      ASSERT_TRUE(v && v->is_number()) << k << "\n" << out;
      EXPECT_GT(*v->as_double(), 0.0) << k;
    }
    EXPECT_TRUE(s.find("round_trip_ok")->boolean);
    EXPECT_TRUE(s.find("verified_bit_exact_vs_cpu")->boolean);
    const uint64_t mb = s.find("buffer_mb")->as_u64().value_or(0);
    EXPECT_GE(s.find("buffer_bytes")->as_u64().value_or(0), (mb << 20) - 4);
    EXPECT_LE(s.find("buffer_bytes")->as_u64().value_or(0), mb << 20);
    EXPECT_LT(*s.find("ratio")->as_double(), 0.8);  // bf16 weights compress
  }
  EXPECT_EQ(sets->items[0].find("buffer_mb")->as_u64(), first_mb);
}

TEST(NzbenchGpu, SyntheticOnTheSimulatorWritesTheGpuSection) {
  const std::string err_file = ::testing::TempDir() + "nzbench_gpu.err";
  const auto r = run_command(std::string(NZBENCH_EXE) +
                             " --synthetic 100000 --dtype bf16 --gpu --gpu-mb 4 --json --repeat 1 --no-peers",
                             err_file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_gpu_section(r.out, 1, 4);
  // The simulator warning goes to stderr, not into the JSON.
  EXPECT_NE(r.err.find("simulator timings are not GPU timings"), std::string::npos) << r.err;
}

TEST(NzbenchGpu, RealFileTwoSizes) {
  const std::string file = std::string(NZTOOLS_WEIGHTS_DIR) + "/gpt-neo-125m-attn-bf16.safetensors";
  const auto r = run_command(std::string(NZBENCH_EXE) + " " + file +
                             " --gpu --gpu-mb 4,6 --json --repeat 1 --no-peers");
  ASSERT_EQ(r.exit_code, 0);
  expect_gpu_section(r.out, 2, 4);
}

TEST(NzbenchGpu, TextReportWarnsAboutTheSimulator) {
  const auto r = run_command(std::string(NZBENCH_EXE) + " --synthetic 50000 --gpu --gpu-mb 4 --repeat 1 --no-peers");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("simulator timings are not GPU timings"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cpu-exact"), std::string::npos) << r.out;
}

TEST(NzbenchGpu, BadSizeListIsUsageError) {
  EXPECT_EQ(run_command(std::string(NZBENCH_EXE) + " --synthetic 1000 --gpu --gpu-mb 4,,8").exit_code, 2);
  EXPECT_EQ(run_command(std::string(NZBENCH_EXE) + " --synthetic 1000 --gpu --gpu-mb 0").exit_code, 2);
}

}  // namespace
