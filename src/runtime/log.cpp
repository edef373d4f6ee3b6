#include "runtime/log.h"

#include <unistd.h>

#include <string>

namespace nz::rt {
namespace {
std::atomic<int> g_level{0};
}

void set_log_level(int level) noexcept { g_level.store(level, std::memory_order_relaxed); }

bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
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
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace nz::rt
