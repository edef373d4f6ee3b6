// Loaded kernel modules (host-function libraries, see nzsim.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sim_internal.h"

namespace nzsim {

struct Module;
struct Context;

constexpr uint32_t kKernelMagic = 0x4b524e4c;
constexpr uint32_t kKernelViewMagic = 0x4b56494b;
constexpr uint32_t kModuleMagic = 0x4d4f444c;

struct Kernel;

// The CUkernel handle of a kernel. As on a real driver, a CUkernel is not a
// CUfunction: cuFunc* calls reject it and cuKernel* calls reject a CUfunction
// (cuKernelGetFunction converts); only launches accept both.
struct KernelView {
  uint32_t magic = kKernelViewMagic;
  Kernel* kernel = nullptr;
};

struct Kernel {  // handed out as CUfunction; its `view` as CUkernel
  uint32_t magic = kKernelMagic;
  Module* module = nullptr;
  const nzsim_kernel* desc = nullptr;
  size_t param_bytes = 0;  // packed parameter buffer size
  KernelView view;
};

struct Module {  // handed out as both CUmodule and CUlibrary
  uint32_t magic = kModuleMagic;
  void* dl = nullptr;
  int memfd = -1;  // when loaded from image bytes
  std::string path;
  std::vector<std::unique_ptr<Kernel>> kernels;
  // The context current at cuModuleLoad*: its CUfunctions launch there only
  // (null for libraries, whose kernels any context may launch).
  Context* ctx = nullptr;
  struct Global {
    std::string name;
    uintptr_t address = 0;
    size_t bytes = 0;
  };
  std::vector<Global> globals;  // device memory of its own, freed at unload
};

CUresult load_module_file(const char* path, Module** out);
// `image`: ELF bytes of a module library or an nzsim_module_ref.
CUresult load_module_image(const void* image, Module** out);
void unload_module(Module* m);
Kernel* find_kernel(Module* m, const char* name);
const Module::Global* find_global(Module* m, const char* name);

inline Module* as_module(void* h) {
  auto* m = static_cast<Module*>(h);
  return m && m->magic == kModuleMagic ? m : nullptr;
}
// A CUfunction handle.
inline Kernel* as_function(void* h) {
  auto* k = static_cast<Kernel*>(h);
  return k && k->magic == kKernelMagic ? k : nullptr;
}
// A CUkernel handle.
inline Kernel* as_kernel_handle(void* h) {
  auto* v = static_cast<KernelView*>(h);
  return v && v->magic == kKernelViewMagic ? v->kernel : nullptr;
}
// What a launch accepts: either.
inline Kernel* as_kernel(void* h) {
  if (Kernel* k = as_function(h)) return k;
  return as_kernel_handle(h);
}

}  // namespace nzsim
