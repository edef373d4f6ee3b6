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

using J = nlohmann::ordered_json;
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

// Units parked in host memory (no room to encode them at eviction), one
// restored by its next staging, one freed with its allocation.
TEST(NztraceSummary, ParksAreCountedAsHostOffload) {
  const uint64_t a = 0x7f0000000000, b = a + 2 * MiB;
  const std::vector<std::string> lines = {
      line(1000, "alloc", a, 4 * MiB, 4 * MiB, 0, 0),
      line(1100, "tag", a, 4 * MiB, 4 * MiB, 0, 0, "\"dtype\":1"),
      line(1200, "unit", a, 2 * MiB, 4 * MiB, 0, 0),
      line(1300, "unit", b, 2 * MiB, 4 * MiB, 0, 0),
      line(2000, "compress", a, 2 * MiB, 3 * MiB, 0, MiB, "\"compressed\":1048576"),
      line(2100, "compress", b, 2 * MiB, 2 * MiB, 0, 2 * MiB, "\"compressed\":1048576"),
      line(3000, "stage", a, 2 * MiB, 4 * MiB, 2 * MiB, MiB),
      line(3100, "stage", b, 2 * MiB, 5 * MiB, 4 * MiB, 0),
      line(4000, "park", a, 2 * MiB, 3 * MiB, 2 * MiB, 0),
      line(4100, "park", b, 2 * MiB, 1 * MiB, 0, 0),
      line(5000, "stage", a, 2 * MiB, 3 * MiB, 2 * MiB, 0),
      line(6000, "park", a, 2 * MiB, 1 * MiB, 0, 0),
      line(7000, "free", a, 4 * MiB, 0, 0, 0),
  };
  const TraceSummary s = summarize(parse_all(lines));
  EXPECT_EQ(s.parks, 3u);
  EXPECT_EQ(s.bytes_parked, 6 * MiB);
  EXPECT_EQ(s.parked_peak_bytes, 4 * MiB);  // both units at once, before a's staging
  ASSERT_EQ(s.buffers.size(), 2u);
  EXPECT_EQ(s.buffers[0].parks + s.buffers[1].parks, 3u);
  const RunInfo run{"prog", 0, ""};
  auto doc = nz::util::json::parse(render_json(s, run), nullptr);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->find("cost")->find("parks")->as_u64(), 3u);
  EXPECT_EQ(doc->find("cost")->find("parked_peak_bytes")->as_u64(), 4 * MiB);
  const std::string text = render_text(s, run, 5);
  EXPECT_NE(text.find("parked in host memory"), std::string::npos) << text;
  EXPECT_NE(text.find("at most 4.0 MiB at once"), std::string::npos) << text;
  // Without parks the report says nothing of them.
  EXPECT_EQ(render_text(summarize(parse_all(pressure_trace())), run, 5).find("parked"), std::string::npos);
}

// Memory the runtime passed through ("unserved": PyTorch's expandable
// segments or async backend): named in the text with the way out, by kind in
// JSON; a run without it says nothing of it.
TEST(NztraceSummary, UnservedMemoryIsNamedWithTheWayOut) {
  // The counters line at exit carries the peaks; a kind never said stays out.
  std::string counters = counters_line(3000, 0, 0, 0, 1, CounterValues{});
  counters.insert(counters.size() - 1, ",\"unserved_vmm_peak\":" + std::to_string(160 * MiB) +
                                           ",\"unserved_async_peak\":0");
  const std::vector<std::string> lines = {
      line(1000, "unserved", 0, 0, 0, 0, 0, "\"reason\":\"stream_ordered\""),
      line(2000, "unserved", 0, 96 * MiB, 96 * MiB, 0, 0, "\"reason\":\"program_vmm\""),
      counters,
  };
  const TraceSummary s = summarize(parse_all(lines));
  ASSERT_EQ(s.unserved.size(), 2u);
  EXPECT_EQ(s.unserved.at("program_vmm"), 160 * MiB) << "the peak, not the bytes when said";
  EXPECT_EQ(s.unserved.at("stream_ordered"), 0u);
  const TraceSummary said_only = summarize(parse_all({lines[1]}));
  EXPECT_EQ(said_only.unserved.at("program_vmm"), 96 * MiB) << "without a counters line: the bytes when said";
  EXPECT_TRUE(summarize(parse_all({counters})).unserved.empty()) << "a peak in the counters alone is not a notice";
  const RunInfo run{"prog", 0, ""};
  auto doc = nz::util::json::parse(render_json(s, run), nullptr);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->find("unserved")->find("program_vmm")->as_u64(), 160 * MiB);
  const std::string text = render_text(s, run, 5);
  EXPECT_NE(text.find("cuMemCreate/cuMemMap), peak 160.0 MiB; with PyTorch, drop expandable_segments:True"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("asked for by PyTorch's allocator settings; with PyTorch, drop backend:cudaMallocAsync"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("no decode or encode"), std::string::npos) << "not an older runtime: nothing to time\n" << text;
  EXPECT_EQ(render_text(summarize(parse_all(pressure_trace())), run, 5).find("passed through"), std::string::npos);
}

// A store given up while staged that came back from its host copy at the
// eviction (store_restore) instead of a re-encode: counted apart, and the
// saved figure follows the `store` members as for any store.
TEST(NztraceSummary, AllocationsSharedWithOtherProcessesAreSaid) {
  const std::vector<std::string> lines = {
      line(1000, "share", 0x7000000, 20 * MiB, 20 * MiB, 0, 0, ""),
      line(2000, "share", 0x9000000, 4 * MiB, 24 * MiB, 0, 0, ""),
  };
  const TraceSummary s = summarize(parse_all(lines));
  EXPECT_EQ(s.shared_allocations, 2u);
  EXPECT_EQ(s.shared_bytes, 24 * MiB);
  const RunInfo run{"prog", 0, ""};
  auto doc = nz::util::json::parse(render_json(s, run), nullptr);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->find("cost")->find("shared_bytes")->as_u64(), 24 * MiB);
  const std::string text = render_text(s, run, 5);
  EXPECT_NE(text.find("shared with other processes (CUDA IPC): 2 allocations, 24.0 MiB"), std::string::npos) << text;
  EXPECT_EQ(render_text(summarize(parse_all(pressure_trace())), run, 5).find("CUDA IPC"), std::string::npos);
}

TEST(NztraceSummary, DmaBufExportsAndStalledWaitsAreSaid) {
  const std::vector<std::string> lines = {
      line(1000, "dmabuf", 0x7000000, 6 * MiB, 6 * MiB, 0, 0, ""),
      line(2000, "stalled", 0x9000000, 2 * MiB, 8 * MiB, 4 * MiB, 1 * MiB, ""),
      line(3000, "stalled", 0x9200000, 2 * MiB, 8 * MiB, 4 * MiB, 1 * MiB, ""),
  };
  const TraceSummary s = summarize(parse_all(lines));
  EXPECT_EQ(s.malformed_lines, 0u);
  EXPECT_EQ(s.dmabuf_allocations, 1u);
  EXPECT_EQ(s.dmabuf_bytes, 6 * MiB);
  EXPECT_EQ(s.stalled_waits, 2u);
  const RunInfo run{"prog", 0, ""};
  auto doc = nz::util::json::parse(render_json(s, run), nullptr);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->find("cost")->find("dmabuf_bytes")->as_u64(), 6 * MiB);
  EXPECT_EQ(doc->find("cost")->find("stalled_waits")->as_u64(), 2u);
  const std::string text = render_text(s, run, 5);
  EXPECT_NE(text.find("exported as dma-bufs (NIC, storage): 1 allocation, 6.0 MiB"), std::string::npos) << text;
  EXPECT_NE(text.find("evictions that gave up waiting for a blocked stream: 2"), std::string::npos) << text;
  const std::string plain = render_text(summarize(parse_all(pressure_trace())), run, 5);
  EXPECT_EQ(plain.find("dma-buf"), std::string::npos);
  EXPECT_EQ(plain.find("blocked stream"), std::string::npos);
}

TEST(NztraceSummary, StoresRestoredFromHostCopiesAreCounted) {
  // pressure_trace() up to its store release, then a restore instead of its re-encode.
  const uint64_t a = 0x7f0000000000;
  std::vector<std::string> lines = pressure_trace();
  lines.resize(6);
  lines.push_back(line(4000, "store_restore", a, 4 * MiB, 3 * MiB / 2, 0, 3 * MiB / 2,
                       "\"ns\":40000,\"compressed\":1572864"));
  const TraceSummary s = summarize(parse_all(lines));
  EXPECT_EQ(s.malformed_lines, 0u);
  EXPECT_EQ(s.store_releases, 1u);
  EXPECT_EQ(s.store_restores, 1u);
  EXPECT_EQ(s.reencodes, 0u);
  const RunInfo run{"prog", 0, ""};
  auto doc = nz::util::json::parse(render_json(s, run), nullptr);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->find("cost")->find("store_restores")->as_u64(), 1u);
  const std::string text = render_text(s, run, 5);
  EXPECT_NE(text.find("after 1 store releases (1 stores restored from host copies)"), std::string::npos) << text;
  // Without restores the report says nothing of them.
  EXPECT_EQ(render_text(summarize(parse_all(pressure_trace())), run, 5).find("restored from host"),
            std::string::npos);
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

// A newer runtime's "counters" lines (cumulative staging-work counters): the
// sample trace with one at the start of iterations 1 and 2 and one at exit,
// each with the footprint of the line before it, so every other figure stays
// what sample_trace() gives.
constexpr CounterValues kC1{12, 2, 8 * MiB, 3'000'000, 1'000'000, 0, 2};
constexpr CounterValues kC2{20, 5, 20 * MiB, 4'500'000, 1'250'000, 2, 3};
constexpr CounterValues kC3{26, 9, 36 * MiB, 5'000'000, 1'300'000, 5, 3};

std::vector<std::string> counters_trace() {
  std::vector<std::string> t = sample_trace();
  const auto at = [&](size_t i) { return t.begin() + static_cast<std::ptrdiff_t>(i); };
  t.push_back(counters_line(9000, 0, 0, 0, 2, kC3));                              // at exit
  t.insert(at(9), counters_line(6000, 3 * MiB + MiB / 2, 0, 7 * MiB / 2, 2, kC2));  // after the drop
  t.insert(at(6), counters_line(4000, 3 * MiB + MiB / 2, 0, 7 * MiB / 2, 1, kC1));  // after the second compress
  return t;
}

TEST(NztraceCounters, LineParsesIntoItsFields) {
  // Every member distinct, one beyond 2^53 (a double would round it).
  const CounterValues c{11, 22, 9007199254740993ull, 44, 55, 66, 77};
  const auto e = parse_trace_line(counters_line(123, 1, 2, 3, 7, c));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event, "counters");
  EXPECT_EQ(e->t_ns, 123u);
  EXPECT_EQ(e->ptr, 0u);
  EXPECT_EQ(e->used, 1u);
  EXPECT_EQ(e->staging, 2u);
  EXPECT_EQ(e->store, 3u);
  EXPECT_EQ(e->iteration, 7u);
  ASSERT_TRUE(e->counters);
  EXPECT_EQ(e->counters->vmm_calls, 11u);
  EXPECT_EQ(e->counters->decode_launches, 22u);
  EXPECT_EQ(e->counters->bytes_decompressed, 9007199254740993ull);
  EXPECT_EQ(e->counters->hook_host_ns, 44u);
  EXPECT_EQ(e->counters->hook_wait_ns, 55u);
  EXPECT_EQ(e->counters->stagings_ahead, 66u);
  EXPECT_EQ(e->counters->stagings_on_launch, 77u);
  // Other events carry no counters, even with a member of the same name.
  const auto stage = parse_trace_line(line(5, "stage", 0x1000, 4096, 0, 0, 0, "\"vmm_calls\":3"));
  ASSERT_TRUE(stage);
  EXPECT_FALSE(stage->counters);
  // No time: not a trace line, as for every event.
  EXPECT_FALSE(parse_trace_line(R"({"event":"counters","ptr":"0x0","bytes":0,"vmm_calls":1})"));
}

TEST(NztraceCounters, TotalsDeltasAndHitRate) {
  const TraceSummary s = summarize(parse_all(counters_trace()));
  EXPECT_EQ(s.malformed_lines, 1u);  // sample_trace's truncated line only
  EXPECT_EQ(s.counters_events, 3u);
  ASSERT_TRUE(s.counters);
  EXPECT_EQ(s.counters->vmm_calls, 26u);
  EXPECT_EQ(s.counters->bytes_decompressed, 36 * MiB);
  EXPECT_EQ(s.counters_iteration, 2u);
  ASSERT_EQ(s.per_iteration.size(), 2u);
  EXPECT_EQ(s.per_iteration[0].iteration, 1u);
  EXPECT_EQ(s.per_iteration[0].t_ns, 3000u);  // since the first event (t 1000)
  EXPECT_EQ(s.per_iteration[0].duration_ns, 2000u);
  EXPECT_EQ(s.per_iteration[1].iteration, 2u);
  EXPECT_EQ(s.per_iteration[1].duration_ns, 3000u);
  ASSERT_TRUE(lookahead_hit_rate(*s.counters));
  EXPECT_DOUBLE_EQ(*lookahead_hit_rate(*s.counters), 0.625);

  const RunInfo run{"prog", 0, ""};
  const std::string json = render_json(s, run);
  auto doc = nz::util::json::parse(json, nullptr);
  ASSERT_TRUE(doc) << json;
  // Top level: the last counters line's values.
  EXPECT_EQ(doc->find("vmm_calls")->as_u64(), 26u);
  EXPECT_EQ(doc->find("decode_launches")->as_u64(), 9u);
  EXPECT_EQ(doc->find("bytes_decompressed")->as_u64(), 36 * MiB);
  EXPECT_EQ(doc->find("hook_host_ns")->as_u64(), 5'000'000u);
  EXPECT_EQ(doc->find("hook_wait_ns")->as_u64(), 1'300'000u);
  EXPECT_EQ(doc->find("stagings_ahead")->as_u64(), 5u);
  EXPECT_EQ(doc->find("stagings_on_launch")->as_u64(), 3u);
  EXPECT_EQ(doc->find("lookahead_hit_rate")->as_double(), 0.625);
  // cost keeps the figures from the stage lines.
  EXPECT_EQ(doc->find("cost")->find("bytes_decompressed")->as_u64(), 8 * MiB);
  EXPECT_EQ(doc->find("event_counts")->find("counters")->as_u64(), 3u);
  const auto* per = doc->find("per_iteration");
  ASSERT_TRUE(per && per->is_array());
  ASSERT_EQ(per->items.size(), 2u);
  const uint64_t want[2][10] = {
      // iteration, t_ns, duration_ns, vmm, launches, bytes, host, wait, ahead, on launch
      {1, 3000, 2000, 8, 3, 12 * MiB, 1'500'000, 250'000, 2, 1},
      {2, 5000, 3000, 6, 4, 16 * MiB, 500'000, 50'000, 3, 0},
  };
  const char* keys[10] = {"iteration", "t_ns", "duration_ns", "vmm_calls", "decode_launches", "bytes_decompressed",
                          "hook_host_ns", "hook_wait_ns", "stagings_ahead", "stagings_on_launch"};
  for (size_t i = 0; i < 2; ++i) {
    for (size_t k = 0; k < 10; ++k) {
      const auto* v = per->items[i].find(keys[k]);
      ASSERT_TRUE(v) << i << " " << keys[k];
      EXPECT_EQ(v->as_u64(), want[i][k]) << i << " " << keys[k];
    }
  }
  // The deltas add up to the totals less the first line.
  for (size_t k = 3; k < 10; ++k) {
    EXPECT_EQ(per->items[0].find(keys[k])->as_u64().value() + per->items[1].find(keys[k])->as_u64().value(),
              doc->find(keys[k])->as_u64().value() -
                  nz::util::json::parse(counters_line(0, 0, 0, 0, 1, kC1), nullptr)->find(keys[k])->as_u64().value())
        << keys[k];
  }

  const std::string text = render_text(s, run, 5);
  EXPECT_NE(text.find("staging work: 26 VMM calls, 9 decode launches, 36.0 MiB decompressed, hook time 0.005 s on "
                      "launching threads (0.001 s waiting for the device), 62.5% of stagings done ahead\n"),
            std::string::npos)
      << text;
  // Steady state: iteration 2 alone (iteration 1 is left out).
  EXPECT_NE(text.find("staging work per iteration (steady state, mean of the 1 iteration after the first): 6.0 VMM "
                      "calls, 4.0 decode launches, 16.0 MiB decompressed, hook time 0.500 ms (0.050 ms waiting for "
                      "the device), 100.0% of stagings done ahead\n"),
            std::string::npos)
      << text;
}

TEST(NztraceCounters, OtherFiguresDoNotChange) {
  const TraceSummary with = summarize(parse_all(counters_trace()));
  const TraceSummary without = summarize(parse_all(sample_trace()));
  const RunInfo run{"prog", 0, ""};
  const J a = J::parse(render_json(without, run)), b = J::parse(render_json(with, run));
  for (const char* key : {"memory", "cost", "buffers", "duration_ns", "malformed_lines"})
    EXPECT_EQ(a[key], b[key]) << key;
  // The text: the same lines, bar the header (3 more events) and the two counters lines.
  std::string ta = render_text(without, run, 5), tb = render_text(with, run, 5);
  auto drop_line = [](std::string& t, const std::string& start) {
    const size_t p = t.find(start);
    ASSERT_NE(p, std::string::npos) << start;
    t.erase(p, t.find('\n', p) + 1 - p);
  };
  drop_line(ta, "nztrace: prog exited 0; 13 trace events");
  drop_line(tb, "nztrace: prog exited 0; 16 trace events");
  drop_line(tb, "staging work: ");
  drop_line(tb, "staging work per iteration ");
  EXPECT_EQ(ta, tb);
}

TEST(NztraceCounters, OlderTraceHasNoCounters) {
  const TraceSummary s = summarize(parse_all(sample_trace()));
  EXPECT_FALSE(s.counters);
  EXPECT_EQ(s.counters_events, 0u);
  EXPECT_TRUE(s.per_iteration.empty());
  const RunInfo run{"prog", 0, ""};
  const J j = J::parse(render_json(s, run));
  for (const char* key : {"vmm_calls", "decode_launches", "bytes_decompressed", "hook_host_ns", "hook_wait_ns",
                          "stagings_ahead", "stagings_on_launch", "lookahead_hit_rate", "per_iteration"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_null()) << key;
  }
  // The report's members otherwise stay as they were, in their order.
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items())
    if (!v.is_null() || k == "trace" || k == "wall_ns") keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"tool", "schema_version", "command", "exit_status", "trace", "wall_ns",
                                             "events", "malformed_lines", "duration_ns", "memory", "cost",
                                             "event_counts", "buffers", "timeline"}));
  EXPECT_EQ(render_text(s, run, 5).find("staging work"), std::string::npos);
}

TEST(NztraceCounters, OneLineAtExitGivesTotalsOnly) {
  std::vector<std::string> t = sample_trace();
  t.push_back(counters_line(9000, 0, 0, 0, 0, CounterValues{3, 0, 0, 1000, 0, 0, 0}));
  const TraceSummary s = summarize(parse_all(t));
  const J j = J::parse(render_json(s, RunInfo{"prog", 0, ""}));
  EXPECT_EQ(j["vmm_calls"], 3);
  EXPECT_EQ(j["hook_host_ns"], 1000);
  EXPECT_TRUE(j["lookahead_hit_rate"].is_null());  // no stagings at all
  EXPECT_EQ(j["per_iteration"], J::array());
  const std::string text = render_text(s, RunInfo{"prog", 0, ""}, 5);
  EXPECT_NE(text.find("staging work: 3 VMM calls, 0 decode launches, 0.0 MiB decompressed, hook time 0.000 s on "
                      "launching threads (0.000 s waiting for the device), no stagings\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("per iteration"), std::string::npos);
}

TEST(NztraceCounters, SteadyStateIsTheMeanAfterTheFirstIteration) {
  std::vector<std::string> t;
  // Iteration 1 does 100 VMM calls (warm-up); 2 and 3 do 10 and 20; 4 stagings ahead of 6.
  const CounterValues c[4] = {{5, 1, MiB, 10, 1, 0, 1},
                              {105, 11, 11 * MiB, 1'000'010, 500'001, 1, 5},
                              {115, 13, 13 * MiB, 1'200'010, 500'001, 3, 5},
                              {135, 17, 17 * MiB, 1'600'010, 700'001, 5, 7}};
  for (uint64_t i = 0; i < 4; ++i) t.push_back(counters_line(1000 * (i + 1), 0, 0, 0, i + 1, c[i]));
  const TraceSummary s = summarize(parse_all(t));
  const auto st = s.steady_state();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->iterations, 2u);
  EXPECT_DOUBLE_EQ(st->vmm_calls, 15.0);
  EXPECT_DOUBLE_EQ(st->decode_launches, 3.0);
  EXPECT_DOUBLE_EQ(st->bytes_decompressed, 3.0 * MiB);
  EXPECT_DOUBLE_EQ(st->hook_host_ns, 300'000.0);
  EXPECT_DOUBLE_EQ(st->hook_wait_ns, 100'000.0);
  ASSERT_TRUE(st->lookahead_hit_rate);
  EXPECT_DOUBLE_EQ(*st->lookahead_hit_rate, 4.0 / 6.0);
  EXPECT_NE(render_text(s, RunInfo{"prog", 0, ""}, 5)
                .find("(steady state, mean of the 2 iterations after the first): 15.0 VMM calls, 3.0 decode "
                      "launches, 3.0 MiB decompressed, hook time 0.300 ms (0.100 ms waiting for the device), 66.7% "
                      "of stagings done ahead\n"),
            std::string::npos);
  // Two lines: one difference, no steady state.
  t.resize(2);
  EXPECT_FALSE(summarize(parse_all(t)).steady_state());
}

}  // namespace
