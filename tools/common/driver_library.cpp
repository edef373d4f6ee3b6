// driver_library.cpp: see driver_library.h.
#include "driver_library.h"

#include <dlfcn.h>

#include <fmt/format.h>

namespace nz::tools {

DriverLibrary::~DriverLibrary() {
  if (handle_) dlclose(handle_);
}

bool DriverLibrary::open(std::string& error) {
  handle_ = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char* why = dlerror();
    error = fmt::format("cannot load libcuda.so.1: {}", why ? why : "unknown error");
  }
  return handle_ != nullptr;
}

void* DriverLibrary::symbol(const char* name) const { return handle_ ? dlsym(handle_, name) : nullptr; }

}  // namespace nz::tools
