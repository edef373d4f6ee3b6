// render.h: nztrace's report, as text for people or JSON for machines.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "trace_summary.h"

namespace nztrace {

struct RunInfo {
  std::string command;     // the program and its arguments, for the report header
  int exit_status = 0;     // what nztrace itself exits with
  std::string trace_path;  // kept trace, or "" when it was deleted
  uint64_t wall_ns = 0;    // the program's wall time as nztrace saw it (0: not run here)
  long pid = 0;            // another process of the run (its own trace): its pid; 0 for the program itself
};

// One site as text: Python frames first (where the user's code is), then native.
std::string site_text(const AllocSite& site, size_t max_frames);

// `top`: buffers listed in the text (largest saving first); 0 = all.
std::string render_text(const TraceSummary& s, const RunInfo& run, size_t top);
std::string render_json(const TraceSummary& s, const RunInfo& run);
// The object render_json prints (--compare embeds one per run).
nlohmann::ordered_json report_json(const TraceSummary& s, const RunInfo& run);

}  // namespace nztrace
