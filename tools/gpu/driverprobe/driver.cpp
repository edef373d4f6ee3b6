// driver.cpp: optional dlsym of each entry point (see driver.h).
#include "driver.h"

#include <fmt/format.h>

namespace driverprobe {

bool Driver::load(std::string& error) {
  if (!library_.open(error)) return false;
#define DRIVERPROBE_LOAD(fn) fn = reinterpret_cast<decltype(fn)>(library_.symbol(NZ_DRIVER_SYMBOL_NAME(fn)));
  DRIVERPROBE_FUNCTIONS(DRIVERPROBE_LOAD)
#undef DRIVERPROBE_LOAD
  return true;
}

std::string Driver::missing() const {
  std::string out;
#define DRIVERPROBE_MISSING(fn) \
  if (!fn) out += (out.empty() ? "" : ", ") + std::string(NZ_DRIVER_SYMBOL_NAME(fn));
  DRIVERPROBE_FUNCTIONS(DRIVERPROBE_MISSING)
#undef DRIVERPROBE_MISSING
  return out;
}

std::string Driver::name(CUresult r) const {
  const char* s = nullptr;
  if (cuGetErrorName && cuGetErrorName(r, &s) == CUDA_SUCCESS && s) return s;
  return fmt::format("CUresult {}", static_cast<int>(r));
}

}  // namespace driverprobe
