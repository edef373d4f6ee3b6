// compare.cpp: see compare.h. One list of rows feeds the text, HTML and the
// ratios, so that the three always agree.
#include "compare.h"

#include <fmt/format.h>

#include <optional>
#include <vector>

#include "plot.h"

namespace nztrace {

namespace {

using J = nlohmann::ordered_json;

double mib(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }
double seconds(uint64_t ns) { return static_cast<double>(ns) / 1e9; }

std::optional<double> ratio(double with, double without) {
  if (without <= 0) return std::nullopt;
  return with / without;
}

struct Row {
  std::string what;
  std::string without, with;  // "" = not applicable
  std::optional<double> ratio;
};

std::vector<Row> rows(const TracedRun& a, const TracedRun& b) {
  const TraceSummary& s0 = a.summary;
  const TraceSummary& s1 = b.summary;
  const WeightBytes w = weight_bytes(s1);
  auto m = [](uint64_t v) { return fmt::format("{:.1f} MiB", mib(v)); };
  auto sec = [](uint64_t ns) { return fmt::format("{:.3f} s", seconds(ns)); };
  auto host = [&](const TraceSummary& s, uint64_t ns) { return s.has_codec_time ? sec(ns) : "-"; };
  return {
      {"exit status", fmt::format("{}", a.info.exit_status), fmt::format("{}", b.info.exit_status), std::nullopt},
      {"wall time", sec(a.info.wall_ns), sec(b.info.wall_ns),
       ratio(static_cast<double>(b.info.wall_ns), static_cast<double>(a.info.wall_ns))},
      {"peak device memory (driver)", m(s0.used_peak), m(s1.used_peak),
       ratio(static_cast<double>(s1.used_peak), static_cast<double>(s0.used_peak))},
      {"device memory saved, peak", m(s0.saved_peak), m(s1.saved_peak), std::nullopt},
      {"weights compressed: raw", "", m(w.raw), std::nullopt},
      {"weights compressed: stored", "", m(w.stored), ratio(static_cast<double>(w.stored), static_cast<double>(w.raw))},
      {"compressed store peak", m(s0.store_peak), m(s1.store_peak), std::nullopt},
      {"staging peak", m(s0.staging_peak), m(s1.staging_peak), std::nullopt},
      {"time staging (host)", host(s0, s0.stage_ns), host(s1, s1.stage_ns), std::nullopt},
      {"time compressing (host)", host(s0, s0.encode_ns), host(s1, s1.encode_ns), std::nullopt},
      {"decompressions / faults", fmt::format("{} / {}", s0.stages, s0.faults),
       fmt::format("{} / {}", s1.stages, s1.faults), std::nullopt},
  };
}

std::string ratio_text(const std::optional<double>& r) { return r ? fmt::format("{:.3f}", *r) : ""; }

}  // namespace

WeightBytes weight_bytes(const TraceSummary& s) {
  WeightBytes w;
  for (const auto& b : s.buffers) {
    if (b.compressed_bytes == 0) continue;
    w.raw += b.bytes;
    w.stored += b.compressed_bytes;
  }
  return w;
}

std::string render_compare_text(const TracedRun& without, const TracedRun& with) {
  std::string o = fmt::format("nztrace --compare: {}\n", with.info.command);
  o += fmt::format("  {:<30} {:>16} {:>16} {:>10}\n", "", "without neuzip", "with neuzip", "with/without");
  for (const Row& r : rows(without, with))
    o += fmt::format("  {:<30} {:>16} {:>16} {:>10}\n", r.what, r.without.empty() ? "-" : r.without, r.with,
                     ratio_text(r.ratio));
  o += "  (without neuzip = NEUZIP_OBSERVE=1: the runtime allocates and traces but never compresses;\n"
       "   peaks are cuMemGetInfo at every trace event; host times are the trace's \"ns\")\n";
  return o;
}

std::string compare_html_table(const TracedRun& without, const TracedRun& with) {
  std::string o = "<table>\n<tr><th></th><th>without neuzip</th><th>with neuzip</th><th>with/without</th></tr>\n";
  for (const Row& r : rows(without, with))
    o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", xml_escape(r.what),
                     xml_escape(r.without.empty() ? "-" : r.without), xml_escape(r.with), ratio_text(r.ratio));
  return o + "</table>\n";
}

J compare_json(const TracedRun& without, const TracedRun& with) {
  const TraceSummary& s0 = without.summary;
  const TraceSummary& s1 = with.summary;
  const WeightBytes w = weight_bytes(s1);
  auto r = [](const std::optional<double>& v) { return v ? J(*v) : J(nullptr); };
  auto host_s = [](const TraceSummary& s, uint64_t ns) { return s.has_codec_time ? J(seconds(ns)) : J(nullptr); };
  J o;
  o["tool"] = "nztrace";
  o["schema_version"] = 1;
  o["mode"] = "compare";
  o["command"] = with.info.command;
  o["exit_status"] = with.info.exit_status;
  o["exit_status_without"] = without.info.exit_status;
  o["peak_device_bytes_without"] = s0.used_peak;
  o["peak_device_bytes_with"] = s1.used_peak;
  o["peak_device_ratio"] = r(ratio(static_cast<double>(s1.used_peak), static_cast<double>(s0.used_peak)));
  o["weights_raw_bytes"] = w.raw;
  o["weights_stored_bytes"] = w.stored;
  o["weights_ratio"] = r(ratio(static_cast<double>(w.stored), static_cast<double>(w.raw)));
  o["saved_peak_bytes"] = s1.saved_peak;
  o["store_peak_bytes"] = s1.store_peak;
  o["staging_peak_bytes"] = s1.staging_peak;
  o["wall_s_without"] = seconds(without.info.wall_ns);
  o["wall_s_with"] = seconds(with.info.wall_ns);
  o["wall_ratio"] = r(ratio(static_cast<double>(with.info.wall_ns), static_cast<double>(without.info.wall_ns)));
  o["stage_s_with"] = host_s(s1, s1.stage_ns);
  o["encode_s_with"] = host_s(s1, s1.encode_ns);
  o["without"] = report_json(s0, without.info);
  o["with"] = report_json(s1, with.info);
  return o;
}

}  // namespace nztrace
