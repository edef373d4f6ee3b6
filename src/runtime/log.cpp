#include "runtime/log.h"

#include <unistd.h>

#include <cerrno>

#include <string>

namespace nz::rt {
namespace {
std::atomic<int> g_level{0};
}

void set_log_level(int level) noexcept { g_level.store(level, std::memory_order_relaxed); }

bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

bool write_all(int fd, std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void log_line(std::string_view text) noexcept {
  // One write() per line so lines from several threads do not interleave.
  std::string line;
  try {
    line.reserve(text.size() + 10);
    line.append("neuzip: ").append(text).push_back('\n');
  } catch (...) {
    return;
  }
  write_all(STDERR_FILENO, line);
}

}  // namespace nz::rt
