// Modules, libraries and kernels: a module is a shared library of host
// functions (nzsim.h). A CUkernel is the `view` member of its CUfunction's object.
#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sim_module.h"
#include "sim_memory.h"

namespace nzsim {
namespace {

// A real driver hands out the handle values of unloaded functions again; a
// runtime that caches per-handle facts (parameter layouts) must notice the
// unload. Reusing freed Kernel objects last-in first-out makes that happen
// here deterministically.
// Never destroyed: stream workers may still run at process exit.
std::mutex& g_free_kernels_mutex = *new std::mutex;
std::vector<std::unique_ptr<Kernel>>& g_free_kernels = *new std::vector<std::unique_ptr<Kernel>>;

std::unique_ptr<Kernel> reuse_kernel_handle() {
  std::lock_guard lock(g_free_kernels_mutex);
  if (g_free_kernels.empty()) {
    auto k = std::make_unique<Kernel>();
    k->view.kernel = k.get();
    return k;
  }
  auto k = std::move(g_free_kernels.back());
  g_free_kernels.pop_back();
  *k = Kernel{};
  k->view.kernel = k.get();
  return k;
}

void recycle_kernel_handle(std::unique_ptr<Kernel> k) {
  k->magic = 0;  // a stale handle is invalid until reused
  k->view.magic = 0;
  std::lock_guard lock(g_free_kernels_mutex);
  g_free_kernels.push_back(std::move(k));
}

}  // namespace

namespace {

// The byte size of an ELF image in memory: the section header table is
// normally last; segments are checked too.
size_t elf_image_size(const unsigned char* image) {
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(image);
  size_t end = eh->e_shoff + static_cast<size_t>(eh->e_shnum) * eh->e_shentsize;
  const auto* ph = reinterpret_cast<const Elf64_Phdr*>(image + eh->e_phoff);
  for (unsigned i = 0; i < eh->e_phnum; ++i) end = std::max<size_t>(end, ph[i].p_offset + ph[i].p_filesz);
  return std::max<size_t>(end, sizeof(Elf64_Ehdr));
}

CUresult open_module(const std::string& path, Module** out) {
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    log_error("cannot load module {}: {}", path, dlerror());
    return access(path.c_str(), R_OK) == 0 ? CUDA_ERROR_INVALID_IMAGE : CUDA_ERROR_FILE_NOT_FOUND;
  }
  auto entry = reinterpret_cast<nzsim_module_entry_fn>(dlsym(dl, "nzsim_module_kernels"));
  if (!entry) {
    dlclose(dl);
    return CUDA_ERROR_INVALID_IMAGE;
  }
  unsigned count = 0, abi = 0;
  const nzsim_kernel* kernels = entry(&count, &abi);
  if (abi != NZSIM_ABI_VERSION || (count && !kernels)) {
    dlclose(dl);
    return CUDA_ERROR_INVALID_IMAGE;
  }
  auto* m = new Module;
  m->dl = dl;
  m->path = path;
  for (unsigned i = 0; i < count; ++i) {
    std::unique_ptr<Kernel> k = reuse_kernel_handle();
    k->module = m;
    k->desc = &kernels[i];
    for (unsigned p = 0; p < kernels[i].param_count; ++p)
      k->param_bytes = std::max(k->param_bytes, kernels[i].params[p].offset + kernels[i].params[p].size);
    m->kernels.push_back(std::move(k));
  }
  if (auto globals_entry = reinterpret_cast<nzsim_module_globals_fn>(dlsym(dl, "nzsim_module_globals"))) {
    unsigned n = 0;
    const nzsim_global* globals = globals_entry(&n);
    for (unsigned i = 0; i < n && globals; ++i) {
      uintptr_t at = 0;
      if (globals[i].bytes == 0 || allocate_global(globals[i].bytes, &at) != CUDA_SUCCESS) {
        unload_module(m);
        return CUDA_ERROR_OUT_OF_MEMORY;
      }
      m->globals.push_back({globals[i].name, at, globals[i].bytes});
      *globals[i].address = at;
    }
  }
  *out = m;
  return CUDA_SUCCESS;
}

}  // namespace

CUresult load_module_file(const char* path, Module** out) {
  if (!path || !out) return CUDA_ERROR_INVALID_VALUE;
  return open_module(path, out);
}

CUresult load_module_image(const void* image, Module** out) {
  if (!image || !out) return CUDA_ERROR_INVALID_VALUE;
  const auto* bytes = static_cast<const unsigned char*>(image);
  if (std::memcmp(bytes, NZSIM_MODULE_REF_MAGIC, 8) == 0) {
    const auto* ref = static_cast<const nzsim_module_ref*>(image);
    return open_module(std::string(ref->path, strnlen(ref->path, sizeof(ref->path))), out);
  }
  if (std::memcmp(bytes, ELFMAG, SELFMAG) == 0) {
    const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(bytes);
#if defined(__x86_64__)
    constexpr int kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
    constexpr int kHostMachine = EM_AARCH64;
#endif
    if (eh->e_machine != kHostMachine) return CUDA_ERROR_NO_BINARY_FOR_GPU;  // a real cubin
    int fd = memfd_create("nzsim-module", MFD_CLOEXEC);
    if (fd < 0) return CUDA_ERROR_OUT_OF_MEMORY;
    size_t size = elf_image_size(bytes);
    size_t done = 0;
    while (done < size) {
      ssize_t w = write(fd, bytes + done, size - done);
      if (w <= 0) {
        close(fd);
        return CUDA_ERROR_INVALID_IMAGE;
      }
      done += static_cast<size_t>(w);
    }
    CUresult r = open_module("/proc/self/fd/" + std::to_string(fd), out);
    if (r == CUDA_SUCCESS) (*out)->memfd = fd;
    else close(fd);
    return r;
  }
  return CUDA_ERROR_NO_BINARY_FOR_GPU;  // fatbin or PTX: nothing the simulator can run
}

void unload_module(Module* m) {
  for (const auto& g : m->globals) free_global(g.address);
  for (auto& k : m->kernels) recycle_kernel_handle(std::move(k));
  m->kernels.clear();
  dlclose(m->dl);
  if (m->memfd >= 0) close(m->memfd);
  m->magic = 0;
  delete m;
}

const Module::Global* find_global(Module* m, const char* name) {
  for (const auto& g : m->globals)
    if (g.name == name) return &g;
  return nullptr;
}

Kernel* find_kernel(Module* m, const char* name) {
  for (auto& k : m->kernels)
    if (std::strcmp(k->desc->name, name) == 0) return k.get();
  return nullptr;
}

}  // namespace nzsim
