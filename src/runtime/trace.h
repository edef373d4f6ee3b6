// trace.h: NEUZIP_TRACE=<file>: one JSON object per line for every decision
// (alloc, tag, compress, stage, evict, ...), with a monotonic time in ns.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace nz::rt {

// The clock of "t_ns" and of the "ns" durations of timed events.
using TraceClock = std::chrono::steady_clock;

class Trace {
 public:
  ~Trace();
  // Opens the file for this process alone. Several processes of one run
  // share NEUZIP_TRACE (torchrun's ranks under nztrace, a worker a traced
  // program spawns): the first to open the path holds it (an advisory lock
  // for its life) and truncates it; another one writes "<path>.<pid>"
  // instead, and says so in one line, rather than truncating and
  // overwriting the first one's lines. With `fresh_run` (nztrace made the
  // file empty for this run: NEUZIP_TRACE_RUN=1) a path that already holds
  // lines is an earlier process's of the same run, so a later process
  // writes "<path>.<pid>" too. A path under /dev/ or /proc/ (a stream the
  // process has: /dev/stderr) and a pipe or terminal are written as they
  // are, appended to, never locked or truncated. False and a log line when
  // no file opens.
  bool open(const std::string& path, bool fresh_run = false) noexcept;
  // open() at the first line: a process that never writes one (a helper of
  // the program that only asked for the device) makes no file and says
  // nothing.
  void open_at_first_line(const std::string& path, bool fresh_run) noexcept;
  // In a child forked from this process: tracing off and the file closed,
  // so a child that outlives its parent does not keep the file's lock (the
  // lock belongs to the open file, which the child shares). No lock taken:
  // a parent thread may have held it at the fork.
  void close_in_forked_child() noexcept;
  // The file this process writes ("" before it is open, or when tracing is off).
  const std::string& path() const noexcept { return path_; }
  bool enabled() const noexcept { return state_.load(std::memory_order_acquire) != kOff; }
  // {"t_ns":..,"event":"<event>","ptr":"0x..","bytes":..,<extra>} ; `extra` is
  // pre-formatted JSON members (may be empty).
  void emit(std::string_view event, uint64_t ptr, uint64_t bytes, std::string_view extra = {}) noexcept;

 private:
  bool open_now(const std::string& path, bool fresh_run) noexcept;  // mutex_ held

  enum State : int { kOff, kAtFirstLine, kOpen };
  std::mutex mutex_;
  std::atomic<int> state_{kOff};
  int fd_ = -1;
  std::string path_;
  std::string wanted_;  // open_at_first_line's
  bool wanted_fresh_run_ = false;
};

}  // namespace nz::rt
