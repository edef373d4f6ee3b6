// outputs.cpp: see outputs.h.
#include "outputs.h"

#include <fmt/format.h>

#include <cstdio>

#include "perfetto.h"
#include "plot.h"

namespace nztrace {

namespace {


std::vector<PlotPoint> points(const TraceSummary& s, uint64_t FootprintSample::*field) {
  std::vector<PlotPoint> out;
  out.reserve(s.timeline.size());
  for (const auto& p : s.timeline) out.push_back({static_cast<double>(p.t_ns) / 1e9, static_cast<double>(p.*field)});
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

bool write_text_file(const std::string& path, const std::string& text, std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    error = "cannot write " + path;
    return false;
  }
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) {
    error = "cannot write " + path;
    return false;
  }
  return true;
}

bool write_perfetto(const std::string& path, const std::vector<const TracedRun*>& runs, std::string& error) {
  std::vector<PerfettoRun> in;
  for (const TracedRun* r : runs)
    in.push_back({r->label.empty() ? r->info.command : r->info.command + " (" + r->label + ")", &r->trace, &r->summary});
  return write_text_file(path, perfetto_trace(in).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace),
                    error);
}

bool write_plot(const std::string& path, const std::vector<const TracedRun*>& runs, std::string& error) {
  PlotChart chart;
  // The program's own name, not the directory it was run from.
  const std::string& command = runs.back()->info.command;
  const size_t space = command.find(' ');
  const size_t slash = command.rfind('/', space);
  chart.title = "device memory: " + (slash == std::string::npos ? command : command.substr(slash + 1));
  // Device in use per run, solid with its peak marked; for the run with
  // compression also what the compressed store and staging hold, dashed.
  static const char* const kUsedColors[] = {"#7a7a7a", "#d9480f"};
  for (size_t i = 0; i < runs.size(); ++i) {
    const TracedRun& r = *runs[i];
    const std::string who = r.label.empty() ? "" : r.label + ": ";
    chart.series.push_back({who + "device in use", kUsedColors[i + 2 - runs.size()], false, true,
                            r.info.exit_status ? fmt::format("exit {}", r.info.exit_status) : "",
                            points(r.summary, &FootprintSample::used)});
  }
  const TracedRun& last = *runs.back();
  if (last.summary.store_peak > 0)
    chart.series.push_back(
        {"compressed store", "#1c7ed6", true, false, "", points(last.summary, &FootprintSample::store)});
  if (last.summary.staging_peak > 0)
    chart.series.push_back({"staging", "#2f9e44", true, false, "", points(last.summary, &FootprintSample::staging)});
  if (!ends_with(path, ".html")) return write_text_file(path, render_svg(chart), error);
  const std::string details =
      runs.size() == 2 ? compare_html_table(*runs[0], *runs[1])
                       : fmt::format("<p>peak device memory {:.1f} MiB, saved at peak {:.1f} MiB</p>\n",
                                     last.summary.used_peak / 1048576.0, last.summary.saved_peak / 1048576.0);
  return write_text_file(path, render_html(chart, details), error);
}

}  // namespace nztrace
