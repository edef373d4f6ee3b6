// trace_events.h: the runtime's NEUZIP_TRACE file (src/runtime/trace.cpp),
// one JSON object per line, read back into typed events.
//
// Every line has t_ns, event, ptr (hex string), bytes; lines written through
// the runtime also carry used (device bytes in use, cuMemGetInfo), staging
// (physical bytes of the staging pool) and store (bytes of compressed data).
// Some events add members: compress/recompress/reencode "compressed", tag
// "dtype", fault "api", keep_resident "reason", oom "freed"; newer runtimes
// add "ns" (host wall time of the operation) to stage, compress, recompress
// and reencode; stage names its "stream" (hex string). With tracing on, alloc
// carries "site": the id of the allocation site, described once by a "site"
// line before its first use: "id", "native" (symbolised frames, innermost
// first) and "python" (file:line frames, innermost first; absent when the
// allocating thread did not hold the GIL).
// Newer runtimes write "counters" lines (ptr 0, bytes 0, the usual used /
// staging / store): the runtime's cumulative staging-work counters since the
// process started, one when the program starts a new iteration and one at
// exit: "iteration" (the runtime's iteration counter then), "vmm_calls",
// "decode_launches", "bytes_decompressed", "hook_host_ns", "hook_wait_ns",
// "stagings_ahead", "stagings_on_launch"; newer ones add "pid" and, in a
// distributed run, "rank".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nztrace {

// The members of a "counters" line; all cumulative since the process started.
struct CounterValues {
  uint64_t vmm_calls = 0;           // the runtime's cuMemCreate/cuMemMap/cuMemSetAccess/cuMemUnmap calls
  uint64_t decode_launches = 0;     // decode kernel launches
  uint64_t bytes_decompressed = 0;  // bytes the decodes produced
  uint64_t hook_host_ns = 0;        // wall time in launch/copy hooks on the launching threads
  uint64_t hook_wait_ns = 0;        // of which waiting for the device (last uses of ranges being evicted)
  uint64_t stagings_ahead = 0;      // units staged by the look-ahead stager
  uint64_t stagings_on_launch = 0;  // units staged on the launching thread
};

struct TraceEvent {
  uint64_t t_ns = 0;
  std::string event;
  uint64_t ptr = 0;
  uint64_t bytes = 0;
  std::optional<uint64_t> used, staging, store;  // the footprint when the event happened
  std::optional<uint64_t> compressed;            // compress, recompress, reencode
  std::optional<uint64_t> ns;                    // stage, compress, recompress, reencode (newer runtimes)
  std::optional<int64_t> dtype;                  // tag (NZ_TAG_*)
  std::optional<uint64_t> freed;                 // oom
  std::string api;                               // fault
  std::string reason;                            // keep_resident
  std::optional<uint64_t> stream;                // stage (newer runtimes)
  std::optional<uint64_t> site;                  // alloc: its site id; site: the id it describes
  std::vector<std::string> native, python;       // site
  std::optional<uint64_t> iteration;             // counters: the runtime's iteration counter
  std::optional<CounterValues> counters;         // counters (a member missing from the line reads 0)
  std::optional<uint64_t> pid, rank;             // counters (newer runtimes): the writing process, its rank
  // counters: the peaks of memory the runtime passed through (newer runtimes)
  uint64_t unserved_vmm_peak = 0, unserved_async_peak = 0;
};

// One line to an event; nullopt for a line that is not a trace object
// (a truncated last line when the program was killed, for instance).
std::optional<TraceEvent> parse_trace_line(std::string_view line);

struct TraceFile {
  std::vector<TraceEvent> events;  // in file order
  uint64_t malformed_lines = 0;
};

// False with `error` when the file cannot be opened.
bool read_trace_file(const std::string& path, TraceFile& out, std::string& error);

}  // namespace nztrace
