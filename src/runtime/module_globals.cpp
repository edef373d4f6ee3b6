// module_globals.cpp: device pointers a program copies into its modules'
// globals.
//
// A __device__ or __constant__ variable holding device pointers (a struct of
// buffers set once with cudaMemcpyToSymbol, a table of layer weights) is read
// by the module's kernels without any parameter pointing at it or at what it
// points to: the launch scan never sees those pointers, and a kernel reading
// a compressed weight through one met unmapped pages (an illegal address,
// sticky in the program's context). The shim reports where each global lives
// (cuModuleGetGlobal, cuLibraryGetGlobal: cudart asks them for every
// variable it registers); a host-to-device copy into one whose 8-byte words
// point into served allocations pins those allocations whole (staged, never
// compressed: as a texture object's range) until the module is unloaded or
// the allocation freed.
//
// Pins only grow while the module is loaded. A kernel queued before a later
// copy into the global may still read through the old pointers, and no
// launch records a use of what it reads that way, so there is no moment at
// which an old target is known to be free of it (short of a device-wide
// wait per copy). Unloading a module whose kernels still run is undefined in
// CUDA; a freed allocation is not read by a valid program.
#include <algorithm>

#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

void Runtime::on_module_global(const void* module, CUdeviceptr begin, size_t bytes) noexcept {
  if (bytes == 0 || begin + bytes < begin) return;
  std::lock_guard lock(mutex_);
  try {
    auto [it, fresh] = module_globals_.try_emplace(begin);
    if (!fresh && it->second.module == module) return;  // asked again (every cudaGetSymbolAddress)
    // Another module's global at a reused address: the old one is gone.
    for (const auto& [base, owner] : it->second.pinned) unpin_external_locked(PinOwner::kModuleGlobal, owner, "module unloaded");
    it->second = ModuleGlobal{begin + bytes, module, {}};
  } catch (...) {
    log(LogLevel::kError, "out of memory recording a module global at {}: pointers copied into it are not seen",
        hex(begin));
  }
}

Runtime::ModuleGlobal* Runtime::module_global_at(CUdeviceptr ptr, size_t bytes) noexcept {
  if (module_globals_.empty()) return nullptr;
  auto it = module_globals_.upper_bound(ptr);
  if (it == module_globals_.begin()) return nullptr;
  --it;
  return ptr < it->second.end && ptr + bytes <= it->second.end ? &it->second : nullptr;
}

void Runtime::pin_global_targets(ModuleGlobal& g, const std::vector<CUdeviceptr>& targets) noexcept {
  RelaxedCaptureScope relaxed;
  for (CUdeviceptr base : targets) {
    if (std::any_of(g.pinned.begin(), g.pinned.end(), [&](const auto& p) { return p.first == base; })) continue;
    const Allocation* a = allocation_containing(base);
    if (a == nullptr) continue;
    const uintptr_t owner = ++next_global_pin_;
    try {
      g.pinned.emplace_back(base, owner);
    } catch (...) {
      log(LogLevel::kError, "out of memory pinning what a module global points to: {} stays compressible",
          hex(base));
      continue;
    }
    pin_external_locked(PinOwner::kModuleGlobal, owner, a->base, a->bytes, "module global");
    if (!global_pins_reported_) {
      global_pins_reported_ = true;
      log(LogLevel::kError,
          "device pointers were copied into a module global (cudaMemcpyToSymbol): the allocations they point "
          "into ({} bytes at {} first) stay uncompressed while the module is loaded",
          a->bytes, hex(a->base));
    }
  }
}

void Runtime::drop_global_pins_into(const Allocation& a) noexcept {
  for (auto& [begin, g] : module_globals_) {
    std::erase_if(g.pinned, [&](const auto& p) {
      if (p.first != a.base) return false;
      unpin_external_locked(PinOwner::kModuleGlobal, p.second, "allocation freed");
      return true;
    });
  }
}

void Runtime::forget_module_globals(const void* module) noexcept {
  std::lock_guard lock(mutex_);
  for (auto it = module_globals_.begin(); it != module_globals_.end();) {
    if (it->second.module != module) {
      ++it;
      continue;
    }
    for (const auto& [base, owner] : it->second.pinned) unpin_external_locked(PinOwner::kModuleGlobal, owner, "module unloaded");
    it = module_globals_.erase(it);
  }
}

}  // namespace nz::rt
