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
  if (file_ != nullptr) std::fclose(file_);
}

namespace {

// `path` opened for writing and locked for this process; -1 with errno
// EWOULDBLOCK when another process holds it, or (with `fresh_run`) when an
// earlier process of the run wrote it. Truncated otherwise (an earlier run's
// lines). Close-on-exec: a program this process runs does not inherit the
// lock (a child forked without exec shares it and writes nothing: Runtime
// passes everything through there).
int open_locked(const std::string& path, bool fresh_run) noexcept {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  struct stat st {};
  // A terminal or a pipe (NEUZIP_TRACE=/dev/stderr): written as it is.
  if (::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) return fd;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      errno = EWOULDBLOCK;
      return -1;
    }
    // A file system without flock (EINVAL, ENOLCK): this process alone, as before.
    return ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  if (fresh_run && ::fstat(fd, &st) == 0 && st.st_size > 0) {
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
  try {
    std::string chosen = path;
    int fd = open_locked(chosen, fresh_run);
    if (fd < 0 && errno == EWOULDBLOCK) {
      chosen = fmt::format("{}.{}", path, static_cast<long>(::getpid()));
      fd = open_locked(chosen, false);
      // nztrace reads these files itself; a user who set NEUZIP_TRACE is told.
      if (fd >= 0)
        log(fresh_run ? LogLevel::kInfo : LogLevel::kError, "trace file {} is another process's of this run; this process (pid {}) writes {}",
            path, static_cast<long>(::getpid()), chosen);
    }
    if (fd >= 0) file_ = ::fdopen(fd, "w");
    if (file_ == nullptr) {
      if (fd >= 0) ::close(fd);
      log(LogLevel::kError, "cannot open trace file {}: tracing off", chosen);
      return false;
    }
    path_ = chosen;
    return true;
  } catch (...) {
    return false;
  }
}

void Trace::emit(std::string_view event, uint64_t ptr, uint64_t bytes, std::string_view extra) noexcept {
  if (file_ == nullptr) return;
  const auto now = TraceClock::now().time_since_epoch();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  try {
    std::string line = fmt::format("{{\"t_ns\":{},\"event\":\"{}\",\"ptr\":\"{:#x}\",\"bytes\":{}{}{}}}\n", ns,
                                   event, ptr, bytes, extra.empty() ? "" : ",", extra);
    std::lock_guard lock(mutex_);
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fflush(file_);
  } catch (...) {
  }
}

}  // namespace nz::rt
