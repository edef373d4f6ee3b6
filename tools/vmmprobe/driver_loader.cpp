// driver_loader.cpp: dlopen/dlsym of the driver entry points.
#include "driver_loader.h"

#include <fmt/format.h>

namespace vmmprobe {

bool Driver::load(std::string& error) {
  if (!library_.open(error)) return false;
#define VMMPROBE_LOAD(fn)                                                                  \
  fn = reinterpret_cast<decltype(fn)>(library_.symbol(NZ_DRIVER_SYMBOL_NAME(fn)));        \
  if (!fn) {                                                                               \
    error = fmt::format("libcuda.so.1 lacks {}", NZ_DRIVER_SYMBOL_NAME(fn));               \
    return false;                                                                          \
  }
  VMMPROBE_DRIVER_FUNCTIONS(VMMPROBE_LOAD)
#undef VMMPROBE_LOAD
  return true;
}

std::string Driver::describe(CUresult r) const {
  const char* name = nullptr;
  if (cuGetErrorName && cuGetErrorName(r, &name) == CUDA_SUCCESS && name) return fmt::format("{} ({})", name, static_cast<int>(r));
  return fmt::format("CUresult {}", static_cast<int>(r));
}

}  // namespace vmmprobe
