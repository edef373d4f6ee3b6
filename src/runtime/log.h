// log.h: the runtime's only output channel: one line per message on stderr,
// prefixed "neuzip: ", filtered by NEUZIP_LOG (0 quiet, 1 info, 2 debug).
// Library code never prints to stdout.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <string_view>

namespace nz::rt {

enum class LogLevel : int { kError = 0, kInfo = 1, kDebug = 2 };

// Errors are always printed; info/debug only when NEUZIP_LOG allows.
void set_log_level(int level) noexcept;
bool log_enabled(LogLevel level) noexcept;
void log_line(std::string_view text) noexcept;
// All of `bytes` to `fd` (short writes and EINTR retried); false on an error.
// One call per line keeps lines of several threads (and processes, with
// O_APPEND) whole.
bool write_all(int fd, std::string_view bytes) noexcept;

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (!log_enabled(level)) return;
  try {
    log_line(fmt::format(format, std::forward<Args>(args)...));
  } catch (...) {
    log_line("(log formatting failed)");
  }
}

}  // namespace nz::rt
