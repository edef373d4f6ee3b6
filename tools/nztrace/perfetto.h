// perfetto.h: a run's trace as Chrome/Perfetto trace-event JSON
// (`nztrace --perfetto FILE`; open it in ui.perfetto.dev or chrome://tracing).
//
// Per run, one process: counter tracks "device in use", "compressed store",
// "staging" and "saved" (bytes, at every event that changed them); one
// thread track per stream with a slice per stage (the program's streams:
// mapping + decode launched on that stream; the runtime's prefetch stream:
// decodes ahead of use), a "neuzip internal" track with a slice per compress
// and per eviction (recompress, re-encode; drops as instants), and instant
// events for faults (with the driver call) and out-of-memory evictions.
// Slice durations are the trace's "ns" (host time); each run starts at 0 so
// that runs laid side by side line up.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trace_events.h"
#include "trace_summary.h"

namespace nztrace {

struct PerfettoRun {
  std::string name;  // the process name shown
  const TraceFile* trace = nullptr;
  const TraceSummary* summary = nullptr;  // its timeline gives the counters (saved is not in the trace)
};

nlohmann::ordered_json perfetto_trace(const std::vector<PerfettoRun>& runs);

}  // namespace nztrace
