// driver_loader.cpp: dlopen/dlsym of the driver entry points.
#include "driver_loader.h"

#include <dlfcn.h>

#include <fmt/format.h>

namespace vmmprobe {

#define VMMPROBE_STR2(x) #x
#define VMMPROBE_STR(x) VMMPROBE_STR2(x)  // expands cuda.h's renames first

Driver::~Driver() {
  if (handle_) dlclose(handle_);
}

bool Driver::load(std::string& error) {
  handle_ = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char* why = dlerror();
    error = fmt::format("cannot load libcuda.so.1: {}", why ? why : "unknown error");
    return false;
  }
#define VMMPROBE_LOAD(fn)                                                    \
  fn = reinterpret_cast<decltype(fn)>(dlsym(handle_, VMMPROBE_STR(fn)));     \
  if (!fn) {                                                                 \
    error = fmt::format("libcuda.so.1 lacks {}", VMMPROBE_STR(fn));          \
    return false;                                                            \
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
