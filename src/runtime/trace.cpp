#include "runtime/trace.h"

#include <fmt/format.h>

#include "runtime/log.h"

namespace nz::rt {

Trace::~Trace() {
  if (file_ != nullptr) std::fclose(file_);
}

bool Trace::open(const std::string& path) noexcept {
  std::lock_guard lock(mutex_);
  file_ = std::fopen(path.c_str(), "w");
  if (file_ == nullptr) log(LogLevel::kError, "cannot open trace file {}: tracing off", path);
  return file_ != nullptr;
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
