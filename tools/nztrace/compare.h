// compare.h: `nztrace --compare`: the same command without compression
// (NEUZIP_OBSERVE=1: the runtime allocates, tags and traces, never
// compresses) and with it, side by side.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "render.h"
#include "trace_events.h"
#include "trace_summary.h"

namespace nztrace {

// One run of the program (or a trace read back) and what nztrace made of it.
// The trace of another process of the run ("<trace>.<pid>": a torchrun
// rank, a worker the program spawned), summarised on its own.
struct OtherProcess {
  RunInfo info;  // info.pid names it; info.trace_path is its file when kept
  TraceSummary summary;
};

struct TracedRun {
  std::string label;  // "without neuzip", "with neuzip", or "" for a single run
  RunInfo info;
  TraceFile trace;
  TraceSummary summary;
  std::vector<OtherProcess> others;  // by pid; the report and --json list them after the first process
  size_t idle_others = 0;            // other processes whose trace has no allocation (not in `others`)
};

// The weights the runtime compressed: every buffer ever compressed, its
// size and its latest compressed size.
struct WeightBytes {
  uint64_t raw = 0, stored = 0;
};
WeightBytes weight_bytes(const TraceSummary& s);

std::string render_compare_text(const TracedRun& without, const TracedRun& with);
// {"peak_device_bytes_without", "peak_device_bytes_with", "weights_raw_bytes",
//  "weights_stored_bytes", "wall_s_without", "wall_s_with", ..., "without": {report},
//  "with": {report}} (docs/NZTRACE.md).
nlohmann::ordered_json compare_json(const TracedRun& without, const TracedRun& with);
// The table of render_compare_text as HTML rows, for the --plot page.
std::string compare_html_table(const TracedRun& without, const TracedRun& with);

}  // namespace nztrace
