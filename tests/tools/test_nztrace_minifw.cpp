// nztrace (NZTRACE_EXE) around the mini framework (MINIFW_EXE) on the
// simulated driver with libneuzip (NEUZIP_LIB_PATH): exit status passes
// through, the program's stdout (digest) is unchanged, the report shows
// non-zero saved bytes, and --json / --keep-trace work.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <vector>
#include <string>

#include "util/json_value.h"
#include "tool_run.h"

namespace {

using nztools::test::run_command;

std::string nztrace(const std::string& opts) {
  return std::string(NZTRACE_EXE) + " --lib " + NEUZIP_LIB_PATH + " " + opts;
}

std::string digest_line(const std::string& out) {
  const auto at = out.find("digest: ");
  return at == std::string::npos ? "" : out.substr(at, out.find('\n', at) - at);
}

TEST(NztraceMinifw, InferReportsSavingsAndKeepsStdout) {
  const auto plain = run_command(std::string(MINIFW_EXE) + " infer");
  ASSERT_EQ(plain.exit_code, 0);
  ASSERT_FALSE(digest_line(plain.out).empty()) << plain.out;

  const std::string err_file = ::testing::TempDir() + "nztrace_infer.err";
  const auto traced = run_command(nztrace("-- ") + MINIFW_EXE + " infer", err_file);
  ASSERT_EQ(traced.exit_code, 0) << traced.err;
  EXPECT_EQ(traced.out, plain.out);  // the report goes to stderr only
  EXPECT_NE(traced.err.find("device memory saved: peak "), std::string::npos) << traced.err;
  EXPECT_EQ(traced.err.find("device memory saved: peak 0.0 MiB"), std::string::npos) << traced.err;
  EXPECT_NE(traced.err.find("buffers ("), std::string::npos) << traced.err;
}

TEST(NztraceMinifw, JsonAndKeptTrace) {
  const std::string trace = ::testing::TempDir() + "nztrace_infer.trace";
  const std::string report = ::testing::TempDir() + "nztrace_infer.json";
  std::filesystem::remove(trace);
  const auto traced =
      run_command(nztrace("--json --keep-trace " + trace + " --report " + report + " -- ") + MINIFW_EXE + " infer");
  ASSERT_EQ(traced.exit_code, 0);
  EXPECT_FALSE(digest_line(traced.out).empty());
  ASSERT_TRUE(std::filesystem::exists(trace));
  EXPECT_GT(std::filesystem::file_size(trace), 0u);
  const auto text = run_command("cat " + report).out;
  nz::util::json::ParseError err;
  auto doc = nz::util::json::parse(text, &err);
  ASSERT_TRUE(doc) << err.message << " at " << err.offset << "\n" << text;
  EXPECT_EQ(doc->find("exit_status")->as_u64(), 0u);
  EXPECT_GT(doc->find("memory")->find("saved_peak_bytes")->as_u64().value_or(0), 0u);
  EXPECT_GT(doc->find("cost")->find("compressions")->as_u64().value_or(0), 0u);
  // The runtime times its encodes ("ns" on compress events): never null here.
  EXPECT_GT(doc->find("cost")->find("encode_ns")->as_u64().value_or(0), 0u);
  EXPECT_TRUE(doc->find("cost")->find("decode_ns")->is_number());
  const auto* buffers = doc->find("buffers");
  ASSERT_TRUE(buffers && !buffers->items.empty());
  for (const auto& b : buffers->items) {
    EXPECT_TRUE(b.find("address")->is_string());
    EXPECT_GT(b.find("bytes")->as_u64().value_or(0), 0u);
    EXPECT_TRUE(b.find("staged")->is_number());
  }
  // The kept trace reads back to the same summary.
  const auto again = run_command(std::string(NZTRACE_EXE) + " --json --from-trace " + trace, report + ".2");
  ASSERT_EQ(again.exit_code, 0);
  auto doc2 = nz::util::json::parse(run_command("cat " + report + ".2").out, nullptr);
  ASSERT_TRUE(doc2);
  EXPECT_EQ(doc2->find("memory")->find("saved_peak_bytes")->as_u64(),
            doc->find("memory")->find("saved_peak_bytes")->as_u64());
}

// Several processes of one run share NEUZIP_TRACE (torchrun's ranks, a
// worker the program spawns): two at once, then one after them. Each must
// keep its own trace (the runtime writes "<trace>.<pid>" for all but the
// first), none may truncate or overwrite another's lines, and the report
// gives each process's figures.
TEST(NztraceMinifw, EveryProcessOfARunKeepsItsOwnTrace) {
  const std::string trace = ::testing::TempDir() + "nztrace_procs.trace";
  const std::string report = ::testing::TempDir() + "nztrace_procs.json";
  const std::string m = MINIFW_EXE;
  // A stale file of an earlier run beside the kept trace is not this run's.
  run_command("echo stale > " + trace + ".1");
  // The first and the last process only ask for the device (a device check
  // before the workload, a compile worker). The last writes no trace at all;
  // the first says one thing (PyTorch's allocator setting), so it holds the
  // trace file: it is counted, not reported, and the report is still the
  // workload's.
  const std::string query = "python3 -c \"import ctypes; ctypes.CDLL(\\\"libcuda.so.1\\\").cuInit(0)\"";
  // The concurrent two are ranks 0 and 1 of a distributed run: named so.
  const auto traced = run_command(nztrace("--json --keep-trace " + trace + " --report " + report + " -- ") +
                                  "sh -c 'PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True " + query +
                                  "; WORLD_SIZE=2 RANK=0 " + m + " infer & WORLD_SIZE=2 RANK=1 " + m + " infer & wait; " +
                                  m + " infer; " + query + "'");
  ASSERT_EQ(traced.exit_code, 0);
  const auto text = run_command("cat " + report).out;
  auto doc = nz::util::json::parse(text, nullptr);
  ASSERT_TRUE(doc) << text;
  auto check = [](const nz::util::json::Value& r, const std::string& who) {
    EXPECT_EQ(r.find("malformed_lines")->as_u64(), 0u) << who;
    EXPECT_GT(r.find("events")->as_u64().value_or(0), 0u) << who;
    EXPECT_GT(r.find("memory")->find("saved_peak_bytes")->as_u64().value_or(0), 0u) << who;
    return r.find("cost")->find("compressions")->as_u64().value_or(0);
  };
  const uint64_t first = check(*doc, "the first process");
  EXPECT_GT(first, 0u);
  const auto* others = doc->find("other_processes");
  ASSERT_TRUE(others != nullptr) << "one trace for three processes";
  ASSERT_EQ(others->items.size(), 2u);
  for (const auto& o : others->items) {
    const uint64_t pid = o.find("pid")->as_u64().value_or(0);
    EXPECT_GT(pid, 1u);
    // The same program: the same buffers compressed, in every process.
    EXPECT_EQ(check(o, "process " + std::to_string(pid)), first);
    ASSERT_TRUE(o.find("trace")->is_string());
    EXPECT_TRUE(std::filesystem::exists(trace + "." + std::to_string(pid)));
  }
  EXPECT_FALSE(std::filesystem::exists(trace + ".1")) << "an earlier run's file was kept as this run's";
  // Ranks 0 and 1 ran at once, the third without a rank after them.
  std::vector<uint64_t> ranks;
  for (const nz::util::json::Value* r : {static_cast<const nz::util::json::Value*>(&*doc), &others->items[0], &others->items[1]})
    if (const auto* rank = r->find("rank")) ranks.push_back(rank->as_u64().value_or(99));
  std::sort(ranks.begin(), ranks.end());
  EXPECT_EQ(ranks, (std::vector<uint64_t>{0, 1}));
  const auto* idle = doc->find("idle_other_processes");
  EXPECT_TRUE(idle && idle->as_u64() == 1u) << "the process that only initialised CUDA and said one thing";
  // The text report lists them too.
  const std::string err_file = ::testing::TempDir() + "nztrace_procs.err";
  const auto again = run_command(std::string(NZTRACE_EXE) + " --from-trace " + trace, err_file);
  ASSERT_EQ(again.exit_code, 0);
  EXPECT_NE(again.err.find("2 more processes of the run wrote traces"), std::string::npos) << again.err;
}

TEST(NztraceMinifw, ExitStatusPassesThrough) {
  EXPECT_EQ(run_command(nztrace("-- sh -c 'exit 7'")).exit_code, 7);
  EXPECT_EQ(run_command(nztrace("-- sh -c 'kill -TERM $$'")).exit_code, 128 + 15);
  EXPECT_EQ(run_command(nztrace("-- /nonexistent/program")).exit_code, 127);
  EXPECT_EQ(run_command(std::string(NZTRACE_EXE) + " --bogus -- true").exit_code, 125);
  EXPECT_EQ(run_command(std::string(NZTRACE_EXE) + " --lib /nonexistent.so -- true").exit_code, 125);
}

}  // namespace
