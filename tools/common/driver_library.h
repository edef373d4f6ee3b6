// driver_library.h: libcuda.so.1 opened by the tools that call the driver
// directly (vmmprobe, driverprobe), so that they build without a driver and
// run on whichever libcuda.so.1 the loader finds: a GPU's, or tests/sim's.
#pragma once

#include <string>

namespace nz::tools {

class DriverLibrary {
 public:
  DriverLibrary() = default;
  DriverLibrary(const DriverLibrary&) = delete;
  DriverLibrary& operator=(const DriverLibrary&) = delete;
  ~DriverLibrary();

  // dlopen("libcuda.so.1"), local binding; false with `error` when it fails.
  bool open(std::string& error);
  // The entry point exported as `name`, or null.
  void* symbol(const char* name) const;

 private:
  void* handle_ = nullptr;
};

}  // namespace nz::tools

// Stringizes after expansion, so cuda.h's renames (cuMemAlloc -> cuMemAlloc_v2)
// give the symbol the prototype belongs to.
#define NZ_DRIVER_SYMBOL_NAME2(x) #x
#define NZ_DRIVER_SYMBOL_NAME(x) NZ_DRIVER_SYMBOL_NAME2(x)
