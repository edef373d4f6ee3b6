// nztrace's allocation sites, --compare figures, --perfetto timeline and
// --plot chart on hand-written traces (no driver needed).
#include <gtest/gtest.h>

#include <string>

#include "nztrace/compare.h"
#include "nztrace/perfetto.h"
#include "nztrace/plot.h"
#include "nztrace/render.h"
#include "nztrace/trace_summary.h"
#include "nztrace_trace_lines.h"

namespace {

using namespace nztrace;
using namespace nztrace::test;
using J = nlohmann::ordered_json;

constexpr uint64_t kA = 0x7f0000000000, kS1 = 0x5000, kPrefetch = 0x6000;

// One 4 MiB allocation made at site 1 (described first), two 2 MiB units,
// both compressed; the first staged on stream 0x5000, the second decoded
// ahead on the prefetch stream; a fault; a drop; an out-of-memory event.
std::vector<std::string> site_trace() {
  const std::string s1 = "\"stream\":\"0x5000\"", sp = "\"stream\":\"0x6000\"";
  return {
      R"({"t_ns":500,"event":"site","ptr":"0x0","bytes":0,"id":1,"native":["app!load+0x10","app!main+0x20"],)"
      R"("python":["train.py:12 in load","train.py:40 in <module>"]})",
      line(1000, "alloc", kA, 4 * MiB, 4 * MiB, 0, 0, "\"site\":1"),
      line(1100, "tag", kA, 4 * MiB, 4 * MiB, 0, 0, "\"dtype\":1"),
      line(1200, "unit", kA, 2 * MiB, 4 * MiB, 0, 0),
      line(1300, "unit", kA + 2 * MiB, 2 * MiB, 4 * MiB, 0, 0),
      line(5000, "compress", kA, 2 * MiB, 3 * MiB, 0, MiB, "\"ns\":3000,\"compressed\":1048576"),
      // Written 4000 ns after it began: overlaps the compress before it by 1000 ns.
      line(8000, "compress", kA + 2 * MiB, 2 * MiB, 2 * MiB, 0, 2 * MiB, "\"ns\":4000,\"compressed\":1048576"),
      line(9000, "stage", kA, 2 * MiB, 4 * MiB, 2 * MiB, 2 * MiB, "\"ns\":500," + s1),
      line(9000, "fault", 0, 0, 4 * MiB, 2 * MiB, 2 * MiB, "\"api\":\"cuLaunchKernel\""),
      line(9500, "stage", kA + 2 * MiB, 2 * MiB, 6 * MiB, 4 * MiB, 2 * MiB, "\"ns\":300," + sp),
      line(9500, "prefetch", kA + 2 * MiB, 2 * MiB, 6 * MiB, 4 * MiB, 2 * MiB),
      line(9800, "drop", kA, 2 * MiB, 4 * MiB, 2 * MiB, 2 * MiB),
      line(9900, "oom", 0, 8 * MiB, 4 * MiB, 2 * MiB, 2 * MiB, "\"freed\":2097152"),
  };
}

TracedRun traced(const std::vector<std::string>& lines, const std::string& label, int status = 0) {
  TracedRun r;
  r.label = label;
  r.info.command = "app train";
  r.info.exit_status = status;
  r.info.wall_ns = 2'000'000'000;
  r.trace = parse_all(lines);
  r.summary = summarize(r.trace);
  return r;
}

TEST(NztraceSites, BuffersNameTheirAllocationSite) {
  const TracedRun r = traced(site_trace(), "");
  ASSERT_EQ(r.summary.sites.size(), 1u);
  ASSERT_EQ(r.summary.buffers.size(), 2u);
  for (const auto& b : r.summary.buffers) EXPECT_EQ(b.site, std::optional<uint64_t>(1));
  const AllocSite& site = r.summary.sites.at(1);
  EXPECT_EQ(site_text(site, 3), "train.py:12 in load < train.py:40 in <module> < app!load+0x10 < ...");
  const std::string text = render_text(r.summary, r.info, 0);
  EXPECT_NE(text.find("allocated at train.py:12 in load"), std::string::npos) << text;
  const J doc = J::parse(render_json(r.summary, r.info));
  EXPECT_EQ(doc["buffers"][0]["site"]["python"][0], "train.py:12 in load");
  EXPECT_EQ(doc["buffers"][0]["site"]["native"][1], "app!main+0x20");
  EXPECT_EQ(doc["wall_ns"], 2'000'000'000u);
}

TEST(NztraceSites, OlderTracesHaveNone) {
  const TracedRun r = traced({line(1000, "alloc", kA, 4 * MiB, 4 * MiB, 0, 0),
                              line(1200, "unit", kA, 2 * MiB, 4 * MiB, 0, 0)},
                             "");
  ASSERT_EQ(r.summary.buffers.size(), 1u);
  EXPECT_FALSE(r.summary.buffers[0].site);
  EXPECT_TRUE(J::parse(render_json(r.summary, r.info))["buffers"][0]["site"].is_null());
}

TEST(NztraceCompare, FiguresAndRatios) {
  const TracedRun without = traced({line(1000, "alloc", kA, 4 * MiB, 8 * MiB, 0, 0)}, "without neuzip");
  TracedRun with = traced(site_trace(), "with neuzip", 3);
  with.info.wall_ns = 3'000'000'000;
  const WeightBytes w = weight_bytes(with.summary);
  EXPECT_EQ(w.raw, 4 * MiB);
  EXPECT_EQ(w.stored, 2 * MiB);
  const J j = compare_json(without, with);
  EXPECT_EQ(j["peak_device_bytes_without"], 8 * MiB);
  EXPECT_EQ(j["peak_device_bytes_with"], 6 * MiB);
  EXPECT_DOUBLE_EQ(j["peak_device_ratio"].get<double>(), 0.75);
  EXPECT_EQ(j["weights_raw_bytes"], 4 * MiB);
  EXPECT_EQ(j["weights_stored_bytes"], 2 * MiB);
  EXPECT_DOUBLE_EQ(j["wall_s_without"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["wall_ratio"].get<double>(), 1.5);
  EXPECT_EQ(j["exit_status"], 3);
  EXPECT_EQ(j["exit_status_without"], 0);
  EXPECT_EQ(j["with"]["cost"]["compressions"], 2);
  const std::string text = render_compare_text(without, with);
  EXPECT_NE(text.find("peak device memory (driver)             8.0 MiB          6.0 MiB      0.750"),
            std::string::npos)
      << text;
  EXPECT_NE(compare_html_table(without, with).find("<td>weights compressed: stored</td>"), std::string::npos);
}

TEST(NztracePerfetto, TracksSlicesCountersInstants) {
  const TracedRun r = traced(site_trace(), "with neuzip");
  const J t = perfetto_trace({{"app (with neuzip)", &r.trace, &r.summary}});
  std::map<std::string, int> slices, instants, thread_names;
  std::vector<J> compress;
  int counters = 0;
  for (const J& e : t["traceEvents"]) {
    const std::string ph = e["ph"];
    if (ph == "M" && e["name"] == "thread_name") ++thread_names[e["args"]["name"]];
    if (ph == "X") ++slices[e["name"]];
    if (ph == "X" && e["name"] == "compress") compress.push_back(e);
    if (ph == "i") ++instants[e["name"]];
    if (ph == "C") ++counters;
  }
  EXPECT_EQ(slices["compress"], 2);
  EXPECT_EQ(slices["stage"], 1);
  EXPECT_EQ(slices["decode ahead (prefetch)"], 1);
  EXPECT_EQ(instants["fault"], 1);
  EXPECT_EQ(instants["out of memory"], 1);
  EXPECT_EQ(instants["evict: drop"], 1);
  EXPECT_EQ(thread_names["stream 0x5000"], 1);
  EXPECT_EQ(thread_names["neuzip prefetch stream 0x6000"], 1);
  // Times from the first event (t 500), in microseconds: the first compress
  // ran 1.5-4.5 us; the second claims 3.5-7.5 us and is clipped to start at 4.5.
  ASSERT_EQ(compress.size(), 2u);
  EXPECT_DOUBLE_EQ(compress[0]["ts"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(compress[0]["dur"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(compress[1]["ts"].get<double>(), 4.5);
  EXPECT_DOUBLE_EQ(compress[1]["dur"].get<double>(), 3.0);
  // Four counters at the first event, then only the ones that changed:
  // far fewer than four per event.
  EXPECT_GE(counters, 4);
  EXPECT_LT(counters, 4 * static_cast<int>(r.trace.events.size()));
}

TEST(NztracePlot, PeaksSurviveLongSeriesAndTextIsEscaped) {
  PlotSeries s{"run <a>", "#d9480f", false, true, "exit 3", {}};
  for (int i = 0; i < 200000; ++i) s.points.push_back({i * 1e-4, (i == 123457 ? 700.0 : 100.0) * MiB});
  const std::string svg = render_svg(PlotChart{"device memory: a & b", {s}});
  EXPECT_NE(svg.find("peak 700.0 MiB"), std::string::npos);
  EXPECT_NE(svg.find("run &lt;a&gt;"), std::string::npos);
  EXPECT_NE(svg.find("a &amp; b"), std::string::npos);
  EXPECT_NE(svg.find(">exit 3<"), std::string::npos);
  EXPECT_LT(svg.size(), 200000u);  // reduced per pixel column, not 200 000 points
  const std::string html = render_html(PlotChart{"t", {s}}, "<p>x</p>");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("<p>x</p>"), std::string::npos);
}

}  // namespace
