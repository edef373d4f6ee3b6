// nztrace's trace reader and summary on hand-written traces in the runtime's
// format (src/runtime/trace.cpp): saved bytes follow released - store -
// staging, per-buffer counts follow the events, bad lines are skipped.
#include <gtest/gtest.h>

#include <string>

#include "util/json_value.h"
#include "nztrace/render.h"
#include "nztrace/trace_summary.h"
#include "nztrace_trace_lines.h"

namespace {

using namespace nztrace;
using namespace nztrace::test;

// One 8 MiB allocation, two 4 MiB bf16 units compressed to 1.5 and 2 MiB; one
// is staged (4 MiB staging), dropped, staged again by a prefetch, recompressed.
std::vector<std::string> sample_trace() {
  const uint64_t a = 0x7f0000000000, b = a + 4 * MiB;
  return {
      line(1000, "alloc", a, 8 * MiB, 8 * MiB, 0, 0),
      line(2000, "tag", a, 8 * MiB, 8 * MiB, 0, 0, "\"dtype\":1"),
      line(2100, "unit", a, 4 * MiB, 8 * MiB, 0, 0),
      line(2200, "unit", b, 4 * MiB, 8 * MiB, 0, 0),
      line(3000, "compress", a, 4 * MiB, 5 * MiB + MiB / 2, 0, 3 * MiB / 2, "\"compressed\":1572864"),
      line(4000, "compress", b, 4 * MiB, 3 * MiB + MiB / 2, 0, 7 * MiB / 2, "\"compressed\":2097152"),
      line(5000, "fault", 0, 0, 3 * MiB + MiB / 2, 0, 7 * MiB / 2, "\"api\":\"cuLaunchKernel\""),
      line(5000, "stage", a, 4 * MiB, 7 * MiB + MiB / 2, 4 * MiB, 7 * MiB / 2),
      line(6000, "drop", a, 4 * MiB, 3 * MiB + MiB / 2, 0, 7 * MiB / 2),
      "{\"t_ns\":6500,\"event\":\"stage\",\"ptr\":",  // truncated: the program was killed mid-write
      line(7000, "stage", b, 4 * MiB, 7 * MiB + MiB / 2, 4 * MiB, 7 * MiB / 2),
      line(7000, "prefetch", b, 4 * MiB, 7 * MiB + MiB / 2, 4 * MiB, 7 * MiB / 2),
      line(8000, "recompress", b, 4 * MiB, 3 * MiB, 0, 3 * MiB, "\"compressed\":1572864"),
      line(9000, "free", a, 8 * MiB, 0, 0, 0),
  };
}

TEST(NztraceSummary, SavedBytesFollowTheRuntimeDefinition) {
  const TraceSummary s = summarize(parse_all(sample_trace()));
  EXPECT_EQ(s.events, 13u);
  EXPECT_EQ(s.malformed_lines, 1u);
  EXPECT_EQ(s.duration_ns, 8000u);
  // Both compressed, nothing staged: 8 - 3.5 = 4.5 MiB; the peak comes after
  // the recompression shrank the store to 3 MiB: 8 - 3 = 5 MiB.
  EXPECT_EQ(s.timeline[5].saved, 9 * MiB / 2);
  EXPECT_EQ(s.timeline[7].saved, MiB / 2);  // a staged: 8 - 3.5 - 4
  EXPECT_EQ(s.saved_peak, 5 * MiB);
  EXPECT_EQ(s.used_at_saved_peak, 3 * MiB);
  EXPECT_EQ(s.saved_final, 0u);  // freed
  EXPECT_GT(s.saved_mean, 0.0);
  EXPECT_LT(s.saved_mean, static_cast<double>(s.saved_peak));
  EXPECT_EQ(s.used_peak, 8 * MiB);
  EXPECT_EQ(s.store_peak, 7 * MiB / 2);
  EXPECT_EQ(s.staging_peak, 4 * MiB);
  EXPECT_EQ(s.compressed_original_bytes, 8 * MiB);
  EXPECT_EQ(s.compressed_bytes, 7 * MiB / 2);
}

TEST(NztraceSummary, CountsPerBufferAndCost) {
  const TraceSummary s = summarize(parse_all(sample_trace()));
  EXPECT_EQ(s.faults, 1u);
  EXPECT_EQ(s.fault_apis.at("cuLaunchKernel"), 1u);
  EXPECT_EQ(s.stages, 2u);
  EXPECT_EQ(s.prefetches, 1u);
  EXPECT_EQ(s.drops, 1u);
  EXPECT_EQ(s.recompressions, 1u);
  EXPECT_FALSE(s.has_codec_time);
  ASSERT_EQ(s.buffers.size(), 2u);
  const BufferStats& first = s.buffers[0];
  EXPECT_EQ(first.address, 0x7f0000000000u);
  EXPECT_EQ(first.bytes, 4 * MiB);
  EXPECT_EQ(first.allocation, 0x7f0000000000u);
  EXPECT_STREQ(dtype_name(first.dtype), "bf16");
  EXPECT_EQ(first.stages, 1u);
  EXPECT_EQ(first.drops, 1u);
  EXPECT_TRUE(first.freed);
  EXPECT_DOUBLE_EQ(first.ratio(), 0.375);
  const BufferStats& second = s.buffers[1];
  EXPECT_EQ(second.stages, 1u);
  EXPECT_EQ(second.prefetches, 1u);
  EXPECT_EQ(second.recompressions, 1u);
  EXPECT_EQ(second.compressed_bytes, 1572864u);  // the recompressed size
}

TEST(NztraceSummary, JsonReportParses) {
  const TraceSummary s = summarize(parse_all(sample_trace()));
  RunInfo run{"prog \"quoted\" arg", 3, ""};
  const std::string json = render_json(s, run);
  nz::util::json::ParseError err;
  auto doc = nz::util::json::parse(json, &err);
  ASSERT_TRUE(doc) << err.message << " at " << err.offset << "\n" << json;
  EXPECT_EQ(doc->find("exit_status")->as_u64(), 3u);
  EXPECT_EQ(doc->find("command")->text, "prog \"quoted\" arg");
  EXPECT_EQ(doc->find("memory")->find("saved_peak_bytes")->as_u64(), 5 * MiB);
  EXPECT_TRUE(doc->find("cost")->find("decode_ns")->is_null());
  EXPECT_EQ(doc->find("buffers")->items.size(), 2u);
  EXPECT_FALSE(doc->find("timeline")->items.empty());
  const std::string text = render_text(s, run, 1);
  EXPECT_NE(text.find("device memory saved: peak 5.0 MiB"), std::string::npos) << text;
  EXPECT_NE(text.find("buffers (1 of 2"), std::string::npos) << text;
}

// A newer runtime's trace: "ns" on stage/compress/reencode, and a store given
// up under pressure (store_release) then encoded again at eviction (reencode).
std::vector<std::string> pressure_trace() {
  const uint64_t a = 0x7f0000000000;
  return {
      line(1000, "alloc", a, 4 * MiB, 4 * MiB, 0, 0),
      line(1100, "tag", a, 4 * MiB, 4 * MiB, 0, 0, "\"dtype\":1"),
      line(1200, "unit", a, 4 * MiB, 4 * MiB, 0, 0),
      line(2000, "compress", a, 4 * MiB, 3 * MiB / 2, 0, 3 * MiB / 2, "\"ns\":500000,\"compressed\":1572864"),
      line(3000, "stage", a, 4 * MiB, 11 * MiB / 2, 4 * MiB, 3 * MiB / 2, "\"ns\":20000"),
      line(3100, "store_release", a, 4 * MiB, 4 * MiB, 4 * MiB, 0),
      line(4000, "reencode", a, 4 * MiB, MiB, 0, MiB, "\"ns\":300000,\"compressed\":1048576"),
      line(5000, "stage", a, 4 * MiB, 5 * MiB, 4 * MiB, MiB, "\"ns\":10000"),
  };
}

TEST(NztraceSummary, ReencodesAndHostTimeAreCounted) {
  const TraceSummary s = summarize(parse_all(pressure_trace()));
  EXPECT_EQ(s.malformed_lines, 0u);
  EXPECT_EQ(s.store_releases, 1u);
  EXPECT_EQ(s.reencodes, 1u);
  EXPECT_EQ(s.bytes_reencoded, 4 * MiB);
  EXPECT_EQ(s.recompressions, 0u);
  // After the re-encode the store is 1 MiB: 4 - 1 = 3 MiB saved, the peak.
  EXPECT_EQ(s.saved_peak, 3 * MiB);
  ASSERT_EQ(s.buffers.size(), 1u);
  EXPECT_EQ(s.buffers[0].reencodes, 1u);
  EXPECT_EQ(s.buffers[0].store_releases, 1u);
  EXPECT_EQ(s.buffers[0].compressed_bytes, 1048576u);  // the re-encoded size, not the first one
  EXPECT_TRUE(s.has_codec_time);
  EXPECT_EQ(s.stage_ns, 30000u);
  EXPECT_EQ(s.encode_ns, 800000u);
  EXPECT_EQ(s.codec_ns(), 830000u);

  const RunInfo run{"prog", 0, ""};
  auto doc = nz::util::json::parse(render_json(s, run), nullptr);
  ASSERT_TRUE(doc);
  const auto* cost = doc->find("cost");
  EXPECT_EQ(cost->find("reencodes")->as_u64(), 1u);
  EXPECT_EQ(cost->find("store_releases")->as_u64(), 1u);
  EXPECT_EQ(cost->find("decode_ns")->as_u64(), 30000u);
  EXPECT_EQ(cost->find("encode_ns")->as_u64(), 800000u);
  EXPECT_EQ(cost->find("host_ns")->as_u64(), 830000u);
  EXPECT_EQ(doc->find("buffers")->items.at(0).find("reencodes")->as_u64(), 1u);
  const std::string text = render_text(s, run, 5);
  EXPECT_NE(text.find("1 re-encodes (4.0 MiB) after 1 store releases"), std::string::npos) << text;
  EXPECT_NE(text.find("host time 0.830 ms (staging 0.030 ms, encoding 0.800 ms"), std::string::npos) << text;
}

TEST(NztraceSummary, OlderTraceHasNoHostTime) {
  const TraceSummary s = summarize(parse_all(sample_trace()));
  EXPECT_NE(render_text(s, RunInfo{"x", 0, ""}, 5).find("decode/encode time: not in the trace"), std::string::npos);
  auto doc = nz::util::json::parse(render_json(s, RunInfo{"x", 0, ""}), nullptr);
  ASSERT_TRUE(doc);
  EXPECT_TRUE(doc->find("cost")->find("encode_ns")->is_null());
  EXPECT_TRUE(doc->find("cost")->find("host_ns")->is_null());
}

TEST(NztraceSummary, EmptyTraceSaysSo) {
  const TraceSummary s = summarize(TraceFile{});
  EXPECT_EQ(s.saved_peak, 0u);
  EXPECT_NE(render_text(s, RunInfo{"x", 0, ""}, 20).find("the trace is empty"), std::string::npos);
}

TEST(NztraceSummary, DownsampleKeepsPeaksAndFillsGaps) {
  std::vector<FootprintSample> t;
  for (uint64_t i = 0; i < 100; ++i) t.push_back({i < 50 ? i : i + 900, i == 10 ? 1000u : 5u, 0});
  const auto d = downsample(t, 1099, 10);
  ASSERT_EQ(d.size(), 10u);
  EXPECT_EQ(d[0].saved, 1000u);  // the peak survives
  for (const auto& p : d) EXPECT_EQ(p.saved == 1000u || p.saved == 5u, true);  // gaps hold the last value, not 0
}

}  // namespace
