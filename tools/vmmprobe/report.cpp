// report.cpp: vmmprobe output. Times are medians in microseconds per call.
#include "report.h"

#include <fmt/format.h>

namespace vmmprobe {

namespace {

// Device names come from the driver: escape what JSON needs escaped.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", c);
    else out += c;
  }
  return out + "\"";
}

std::string verdict(const StallResult& s) {
  return s.work_done_at_return ? "unmap WAITED for the other stream" : "unmap did not wait";
}

}  // namespace

std::string render_table(const ProbeOptions& opts, const ProbeReport& rep) {
  const double page_mib = static_cast<double>(rep.page_bytes) / (1 << 20);
  std::string s = fmt::format(
      "vmmprobe on {} (granularity {} KiB, page {:.0f} MiB), median of {} calls, microseconds per call\n"
      "each run maps a handle of exactly its size; slices of a {}-page handle: {}\n",
      rep.device_name, rep.granularity / 1024, page_mib, opts.repeat, opts.max_pages,
      rep.offsets_supported ? "mapped" : "refused (the driver maps whole handles only)");
  s += fmt::format("{:>6} {:>7} {:>10} {:>9} {:>9} {:>9} {:>11} {:>9} {:>10}\n", "pages", "MiB", "offsetMiB", "create",
                   "release", "map", "set_access", "unmap", "unmap/pg");
  for (const auto& r : rep.runs)
    s += fmt::format("{:>6} {:>7.0f} {:>10.0f} {:>9.1f} {:>9.1f} {:>9.1f} {:>11.1f} {:>9.1f} {:>10.2f}\n", r.pages,
                     r.pages * page_mib, static_cast<double>(r.offset_bytes) / (1 << 20), r.create_us, r.release_us,
                     r.map_us, r.set_access_us, r.unmap_us, r.unmap_us / r.pages);
  if (rep.pages_run.measured)
    s += fmt::format(
        "a run of {} page handles: maps {:.1f} us together, one set-access {:.1f} us, unmap {:.1f} us ({})\n",
        rep.pages_run.pages, rep.pages_run.map_total_us, rep.pages_run.set_access_us, rep.pages_run.unmap_us,
        rep.pages_run.unmap_across ? "one call for the run" : "REFUSED across mappings: one call per page");
  if (rep.stall.measured)
    s += fmt::format(
        "unmap stall: stream work {:.1f} ms; cuMemUnmap of an unrelated page took {:.1f} us meanwhile "
        "({:.1f} us idle); work {} when it returned => {}\n",
        rep.stall.work_ms, rep.stall.unmap_us, rep.stall.idle_unmap_us,
        rep.stall.work_done_at_return ? "DONE" : "still running", verdict(rep.stall));
  else
    s += "unmap stall: not measured (--stall-mb 0)\n";
  return s;
}

std::string render_json(const ProbeOptions& opts, const ProbeReport& rep) {
  std::string s = fmt::format(
      "{{\"tool\": \"vmmprobe\", \"schema_version\": 2, \"device\": {}, \"granularity_bytes\": {}, "
      "\"page_bytes\": {}, \"max_pages\": {}, \"repeat\": {}, \"statistic\": \"median\", \"unit\": \"us per call\", "
      "\"offsets_supported\": {}, \"runs\": [",
      json_string(rep.device_name), rep.granularity, rep.page_bytes, opts.max_pages, opts.repeat,
      rep.offsets_supported ? "true" : "false");
  for (size_t i = 0; i < rep.runs.size(); ++i) {
    const auto& r = rep.runs[i];
    s += fmt::format(
        "{}{{\"pages\": {}, \"bytes\": {}, \"offset_bytes\": {}, \"create_us\": {:.3f}, \"release_us\": {:.3f}, "
        "\"map_us\": {:.3f}, \"set_access_us\": {:.3f}, \"unmap_us\": {:.3f}}}",
        i ? ", " : "", r.pages, r.pages * rep.page_bytes, r.offset_bytes, r.create_us, r.release_us, r.map_us,
        r.set_access_us, r.unmap_us);
  }
  s += "], \"pages_run\": ";
  if (rep.pages_run.measured)
    s += fmt::format(
        "{{\"pages\": {}, \"unmap_across\": {}, \"map_total_us\": {:.3f}, \"set_access_us\": {:.3f}, "
        "\"unmap_us\": {:.3f}}}",
        rep.pages_run.pages, rep.pages_run.unmap_across ? "true" : "false", rep.pages_run.map_total_us,
        rep.pages_run.set_access_us, rep.pages_run.unmap_us);
  else
    s += "null";
  s += ", \"unmap_stall\": ";
  if (rep.stall.measured)
    s += fmt::format(
        "{{\"work_ms\": {:.3f}, \"idle_unmap_us\": {:.3f}, \"unmap_us\": {:.3f}, "
        "\"work_done_when_unmap_returned\": {}, \"unmap_waits_for_other_streams\": {}}}",
        rep.stall.work_ms, rep.stall.idle_unmap_us, rep.stall.unmap_us, rep.stall.work_done_at_return ? "true" : "false",
        rep.stall.work_done_at_return ? "true" : "false");
  else
    s += "null";
  return s + "}\n";
}

}  // namespace vmmprobe
