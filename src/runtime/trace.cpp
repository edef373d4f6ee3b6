#include "runtime/trace.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "runtime/log.h"

namespace nz::rt {

Trace::~Trace() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// Paths that name a stream the process already has (NEUZIP_TRACE=/dev/stderr,
// /proc/self/fd/N): appended to as they are, never locked or truncated (a
// redirected stderr is a regular file holding the program's own lines).
bool names_an_open_stream(const std::string& path) noexcept {
  return path.rfind("/dev/", 0) == 0 || path.rfind("/proc/", 0) == 0;
}

// Whether a file another process of the run already wrote must be left to it.
bool earlier_process_wrote(int fd, bool fresh_run) noexcept {
  struct stat st {};
  return fresh_run && ::fstat(fd, &st) == 0 && st.st_size > 0;
}

// `path` opened for writing and locked for this process; -1 with errno
// EWOULDBLOCK when another process holds it, or (with `fresh_run`) when an
// earlier process of the run wrote it. Truncated otherwise (an earlier run's
// lines). Close-on-exec: a program this process runs does not inherit the
// lock (a child forked without exec shares it and writes nothing: Runtime
// passes everything through there).
int open_locked(const std::string& path, bool fresh_run) noexcept {
  if (names_an_open_stream(path)) return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  struct stat st {};
  // A pipe or a terminal under another name: written as it is.
  if (::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) return fd;
  // A file system without flock (EINVAL, ENOLCK) cannot tell concurrent
  // processes apart; a fresh run's later ones still keep off the first's
  // lines (its size is read once the lock is held).
  const bool held_elsewhere = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  if (held_elsewhere || earlier_process_wrote(fd, fresh_run)) {
    ::close(fd);
    errno = EWOULDBLOCK;
    return -1;
  }
  if (::ftruncate(fd, 0) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool Trace::open(const std::string& path, bool fresh_run) noexcept {
  std::lock_guard lock(mutex_);
  return open_now(path, fresh_run);
}

void Trace::close_in_forked_child() noexcept {
  state_.store(kOff, std::memory_order_relaxed);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Trace::open_at_first_line(const std::string& path, bool fresh_run) noexcept {
  std::lock_guard lock(mutex_);
  try {
    wanted_ = path;
    wanted_fresh_run_ = fresh_run;
    state_.store(kAtFirstLine, std::memory_order_release);
  } catch (...) {
  }
}

bool Trace::open_now(const std::string& path, bool fresh_run) noexcept {
  try {
    std::string chosen = path;
    int fd = open_locked(chosen, fresh_run);
    if (fd < 0 && errno == EWOULDBLOCK) {
      chosen = fmt::format("{}.{}", path, static_cast<long>(::getpid()));
      fd = open_locked(chosen, false);
      // nztrace reads these files itself; a user who set NEUZIP_TRACE is told.
      if (fd >= 0)
        log(fresh_run ? LogLevel::kInfo : LogLevel::kError,
            "trace file {} is another process's of this run; this process (pid {}) writes {}", path,
            static_cast<long>(::getpid()), chosen);
    }
    if (fd < 0) {
      log(LogLevel::kError, "cannot open trace file {}: tracing off", chosen);
      state_.store(kOff, std::memory_order_release);
      return false;
    }
    path_ = chosen;
    fd_ = fd;
    state_.store(kOpen, std::memory_order_release);
    return true;
  } catch (...) {
    state_.store(kOff, std::memory_order_release);
    return false;
  }
}

void Trace::emit(std::string_view event, uint64_t ptr, uint64_t bytes, std::string_view extra) noexcept {
  if (!enabled()) return;
  const auto now = TraceClock::now().time_since_epoch();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  try {
    std::string line = fmt::format("{{\"t_ns\":{},\"event\":\"{}\",\"ptr\":\"{:#x}\",\"bytes\":{}{}{}}}\n", ns,
                                   event, ptr, bytes, extra.empty() ? "" : ",", extra);
    // One write() per line, no stdio buffer: a line is in the file when
    // emit returns (a program that crashes next keeps it), and a child
    // forked meanwhile has no copy of it to flush again at its exit.
    std::lock_guard lock(mutex_);
    if (state_.load(std::memory_order_relaxed) == kAtFirstLine && !open_now(wanted_, wanted_fresh_run_)) return;
    if (fd_ >= 0) write_all(fd_, line);
  } catch (...) {
  }
}

}  // namespace nz::rt
