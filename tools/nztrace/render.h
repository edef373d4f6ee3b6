// render.h: nztrace's report, as text for people or JSON for machines.
#pragma once

#include <string>

#include "trace_summary.h"

namespace nztrace {

struct RunInfo {
  std::string command;     // the program and its arguments, for the report header
  int exit_status = 0;     // what nztrace itself exits with
  std::string trace_path;  // kept trace, or "" when it was deleted
};

// `top`: buffers listed in the text (largest saving first); 0 = all.
std::string render_text(const TraceSummary& s, const RunInfo& run, size_t top);
std::string render_json(const TraceSummary& s, const RunInfo& run);

}  // namespace nztrace
