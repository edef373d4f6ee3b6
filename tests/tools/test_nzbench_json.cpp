// Smoke tests of the nzbench executable (path in $NZBENCH): its --json output
// parses and holds the fixed keys; verification failures and bad inputs give
// the documented exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "util/json_value.h"

namespace {

struct ToolRun {
  int exit_code = -1;
  std::string out;
};

ToolRun run(const std::string& args) {
  const char* exe = std::getenv("NZBENCH");
  EXPECT_NE(exe, nullptr) << "set NZBENCH to the nzbench executable";
  ToolRun r;
  if (!exe) return r;
  const std::string cmd = std::string(exe) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

const char* kKeys[] = {"bytes", "ratio", "bound_ratio", "encode_gbps_1t", "decode_gbps_1t", "decode_gbps_mt"};

void expect_figures(const nz::util::json::Value& v, bool with_peers, const std::string& where) {
  ASSERT_TRUE(v.is_object()) << where;
  for (const char* k : kKeys) {
    const auto* f = v.find(k);
    ASSERT_NE(f, nullptr) << where << " lacks " << k;
    ASSERT_TRUE(f->is_number()) << where << "." << k;
    EXPECT_GT(*f->as_double(), 0.0) << where << "." << k;
  }
  if (!with_peers) return;
  const auto* peers = v.find("peers");
  ASSERT_NE(peers, nullptr) << where;
  for (const char* p : {"zstd-3", "zstd-19"}) {
    const auto* z = peers->find(p);
    ASSERT_NE(z, nullptr) << where << " lacks peer " << p;
    expect_figures(*z, false, where + "." + p);
  }
}

}  // namespace

TEST(NzbenchJson, LosslessSyntheticOutputHasTheFixedSchema) {
  const ToolRun r = run("--synthetic 200000 --dtype bf16 --json --repeat 1 --threads 2");
  ASSERT_EQ(r.exit_code, 0);
  nz::util::json::ParseError err;
  auto doc = nz::util::json::parse(r.out, &err);
  ASSERT_TRUE(doc) << err.message << " at " << err.offset << "\n" << r.out;
  const auto* tensors = doc->find("tensors");
  ASSERT_TRUE(tensors && tensors->is_array());
  ASSERT_EQ(tensors->items.size(), 1u);
  expect_figures(tensors->items[0], true, "tensors[0]");
  ASSERT_NE(doc->find("total"), nullptr);
  expect_figures(*doc->find("total"), true, "total");
  // Normal(0, 0.02) bf16: the bound is near 0.66 and the codec is within 2 % of it.
  const double ratio = *doc->find("total")->find("ratio")->as_double();
  const double bound = *doc->find("total")->find("bound_ratio")->as_double();
  EXPECT_GT(bound, 0.55);
  EXPECT_LT(bound, 0.75);
  EXPECT_GE(ratio, bound * 0.999);
  EXPECT_LT(ratio, bound * 1.02);
  EXPECT_EQ(*doc->find("total")->find("bytes")->as_u64(), 400000u);
}

TEST(NzbenchJson, LossyReportsErrorsWithinTheFormatBound) {
  const ToolRun r = run("--synthetic 100000 --mode lossy --bits 3 --block 64 --json --repeat 1 --threads 2 --no-peers");
  ASSERT_EQ(r.exit_code, 0);
  auto doc = nz::util::json::parse(r.out, nullptr);
  ASSERT_TRUE(doc) << r.out;
  const auto* total = doc->find("total");
  ASSERT_NE(total, nullptr);
  const auto* max_rel = total->find("max_rel_error");
  const auto* mean_rel = total->find("mean_rel_error");
  ASSERT_TRUE(max_rel && mean_rel);
  // docs/FORMAT.md 6.3 (normal range; synthetic data has no subnormals): 2^-(K+1) + 2^-(M+1) + 2^-22.
  EXPECT_LE(*max_rel->as_double(), std::ldexp(1.0, -4) + std::ldexp(1.0, -8) + std::ldexp(1.0, -22));
  EXPECT_GT(*max_rel->as_double(), 0.0);
  EXPECT_LT(*mean_rel->as_double(), *max_rel->as_double());
  EXPECT_LT(*total->find("ratio")->as_double(), 0.5);
}

TEST(NzbenchJson, RealFileWithTilingAndCast) {
  const ToolRun r = run(std::string("--dtype bf16 --tile-mb 1 --json --repeat 1 --threads 2 --no-peers ") +
                    NZTOOLS_WEIGHTS_DIR + "/silero_vad_16k.safetensors");
  ASSERT_EQ(r.exit_code, 0);
  auto doc = nz::util::json::parse(r.out, nullptr);
  ASSERT_TRUE(doc) << r.out;
  const auto* tensors = doc->find("tensors");
  ASSERT_TRUE(tensors && !tensors->items.empty());
  for (const auto& t : tensors->items) {
    EXPECT_EQ(t.find("dtype")->text, "bf16");
    EXPECT_GE(*t.find("bytes")->as_u64(), 1u << 20);
  }
  EXPECT_TRUE(doc->find("skipped")->is_array());
}

TEST(NzbenchJson, BadInputsGiveExitCode2) {
  const std::string path = ::testing::TempDir() + "/nzbench_bad.safetensors";
  {
    std::ofstream f(path, std::ios::binary);
    f << "\x10\0\0\0\0\0\0\0{not json at all";
  }
  EXPECT_EQ(run(path).exit_code, 2);
  EXPECT_EQ(run("/nonexistent/file.safetensors").exit_code, 2);
  EXPECT_EQ(run("").exit_code, 2);
  EXPECT_EQ(run("--mode bogus --synthetic 10").exit_code, 2);
  // Without a driver (this test's environment has no simulator) --gpu is
  // unavailable: 2. Where a real GPU is reachable it runs: 0.
  const int gpu_rc = run("--gpu --gpu-mb 4 --repeat 1 --no-peers --synthetic 100000").exit_code;
  EXPECT_TRUE(gpu_rc == 2 || gpu_rc == 0) << gpu_rc;
}

// --cpu forces the CPU codec's path and the report names the path that ran;
// every path compresses to the same size (the codec's levels are
// bit-identical: the codec suites check the bytes).
TEST(NzbenchJson, CpuPathIsReportedAndCanBeForced) {
  auto config_of = [](const std::string& args, std::string& path, double& compressed) {
    const ToolRun r = run("--synthetic 100000 --json --repeat 1 --no-peers " + args);
    ASSERT_EQ(r.exit_code, 0) << args;
    nz::util::json::ParseError err;
    auto doc = nz::util::json::parse(r.out, &err);
    ASSERT_TRUE(doc) << err.message;
    const auto* p = doc->find("config")->find("cpu_path");
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(p->is_string());
    path = p->text;
    compressed = *doc->find("total")->find("compressed_bytes")->as_double();
  };
  std::string best, scalar;
  double best_bytes = 0, scalar_bytes = 0;
  config_of("", best, best_bytes);
  EXPECT_TRUE(best == "scalar" || best == "avx2" || best == "avx512") << best;
  config_of("--cpu scalar", scalar, scalar_bytes);
  EXPECT_EQ(scalar, "scalar");
  EXPECT_EQ(scalar_bytes, best_bytes);
  EXPECT_EQ(run("--synthetic 1000 --cpu sse9").exit_code, 2);
}
