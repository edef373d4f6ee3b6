// trace.h: NEUZIP_TRACE=<file>: one JSON object per line for every decision
// (alloc, tag, compress, stage, evict, ...), with a monotonic time in ns.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace nz::rt {

// The clock of "t_ns" and of the "ns" durations of timed events.
using TraceClock = std::chrono::steady_clock;

class Trace {
 public:
  ~Trace();
  // Opens the file (truncating it); false and a log line if it cannot.
  bool open(const std::string& path) noexcept;
  bool enabled() const noexcept { return file_ != nullptr; }
  // {"t_ns":..,"event":"<event>","ptr":"0x..","bytes":..,<extra>} ; `extra` is
  // pre-formatted JSON members (may be empty).
  void emit(std::string_view event, uint64_t ptr, uint64_t bytes, std::string_view extra = {}) noexcept;

 private:
  std::mutex mutex_;
  std::FILE* file_ = nullptr;
};

}  // namespace nz::rt
