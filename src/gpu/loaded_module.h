// loaded_module.h: RAII for a CUmodule loaded through a DriverApi, and the
// lookup of the kernels each device codec backend needs from it.
#pragma once

#include <cuda.h>
#include <fmt/format.h>

#include <initializer_list>
#include <string>

#include "gpu/driver_api.h"

namespace nz::gpu {

class LoadedModule {
 public:
  LoadedModule(const DriverApi& api, CUmodule module) : api_(&api), module_(module) {}
  LoadedModule(const LoadedModule&) = delete;
  LoadedModule& operator=(const LoadedModule&) = delete;
  ~LoadedModule() {
    if (module_ != nullptr) api_->cuModuleUnload(module_);
  }
  CUmodule get() const { return module_; }

  struct FunctionSlot {
    CUfunction* slot;
    const char* name;
  };
  // Resolves every named kernel into its slot. On the first one missing,
  // returns the driver's error and sets `error` to "<owner> lacks <name>: ...".
  CUresult get_functions(std::initializer_list<FunctionSlot> functions, const char* owner,
                         std::string& error) const {
    for (const FunctionSlot& f : functions) {
      const CUresult r = api_->cuModuleGetFunction(f.slot, module_, f.name);
      if (r != CUDA_SUCCESS) {
        error = fmt::format("{} lacks {}: {}", owner, f.name, describe(*api_, r));
        return r;
      }
      // Load it now, at set-up: with lazy loading (CUDA's default) the first
      // decode would load it inside a user's launch or capture, and loading
      // may synchronise the context.
      if (api_->cuFuncLoad != nullptr) api_->cuFuncLoad(*f.slot);
    }
    return CUDA_SUCCESS;
  }

 private:
  const DriverApi* api_;
  CUmodule module_;
};

}  // namespace nz::gpu
