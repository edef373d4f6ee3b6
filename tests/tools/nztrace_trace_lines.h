// nztrace_trace_lines.h: hand-written trace lines in the runtime's format
// (src/runtime/trace.cpp) for nztrace's tests.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "nztrace/trace_events.h"

namespace nztrace::test {

constexpr uint64_t MiB = 1 << 20;

inline std::string line(uint64_t t, const char* ev, uint64_t ptr, uint64_t bytes, uint64_t used, uint64_t staging,
                        uint64_t store, const std::string& extra = "") {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"t_ns\":%llu,\"event\":\"%s\",\"ptr\":\"%#llx\",\"bytes\":%llu,\"used\":%llu,\"staging\":%llu,"
                "\"store\":%llu%s%s}",
                static_cast<unsigned long long>(t), ev, static_cast<unsigned long long>(ptr),
                static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(used),
                static_cast<unsigned long long>(staging), static_cast<unsigned long long>(store),
                extra.empty() ? "" : ",", extra.c_str());
  return buf;
}

// A "counters" line as the runtime writes it (Runtime::emit_counters: the
// usual envelope with ptr 0 and bytes 0, then the cumulative counters).
inline std::string counters_line(uint64_t t, uint64_t used, uint64_t staging, uint64_t store, uint64_t iteration,
                                 const CounterValues& c) {
  auto u = [](uint64_t v) { return std::to_string(v); };
  return "{\"t_ns\":" + u(t) + ",\"event\":\"counters\",\"ptr\":\"0x0\",\"bytes\":0,\"used\":" + u(used) +
         ",\"staging\":" + u(staging) + ",\"store\":" + u(store) + ",\"iteration\":" + u(iteration) +
         ",\"vmm_calls\":" + u(c.vmm_calls) + ",\"decode_launches\":" + u(c.decode_launches) +
         ",\"bytes_decompressed\":" + u(c.bytes_decompressed) + ",\"hook_host_ns\":" + u(c.hook_host_ns) +
         ",\"hook_wait_ns\":" + u(c.hook_wait_ns) + ",\"stagings_ahead\":" + u(c.stagings_ahead) +
         ",\"stagings_on_launch\":" + u(c.stagings_on_launch) + "}";
}

inline TraceFile parse_all(const std::vector<std::string>& lines) {
  TraceFile f;
  for (const auto& l : lines) {
    if (auto e = parse_trace_line(l)) f.events.push_back(*e);
    else ++f.malformed_lines;
  }
  return f;
}

}  // namespace nztrace::test
