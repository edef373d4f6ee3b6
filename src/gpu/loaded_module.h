// loaded_module.h: RAII for a CUmodule loaded through a DriverApi.
#pragma once

#include <cuda.h>

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

 private:
  const DriverApi* api_;
  CUmodule module_;
};

}  // namespace nz::gpu
