// shim_log.h: one-line diagnostics on stderr ("neuzip: ..."), never stdout,
// never throwing (formatting failures are swallowed).
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <utility>

namespace nz::shim {

void write_log_line(const char* text, size_t length) noexcept;

template <typename... Args>
void log_line(fmt::format_string<Args...> format, Args&&... args) noexcept {
  try {
    fmt::memory_buffer buffer;
    fmt::format_to(std::back_inserter(buffer), "neuzip: ");
    fmt::format_to(std::back_inserter(buffer), format, std::forward<Args>(args)...);
    buffer.push_back('\n');
    write_log_line(buffer.data(), buffer.size());
  } catch (...) {
    static constexpr char kFallback[] = "neuzip: (log formatting failed)\n";
    write_log_line(kFallback, sizeof(kFallback) - 1);
  }
}

}  // namespace nz::shim
