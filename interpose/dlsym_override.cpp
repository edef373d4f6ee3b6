// dlsym_override.cpp: route (b). Frameworks (PyTorch's driver table, Triton)
// and the CUDA runtime itself find driver calls with dlsym(libcuda, "cuXxx");
// for the names we hook, return our wrapper instead of the real function.
// Likewise for NCCL's hooked calls looked up in libnccl.so.2's own handle
// (ctypes and programs that dlopen NCCL locally; wrap_nccl.cpp).
//
// dlsym(RTLD_NEXT, ...) resolves relative to the *caller's* object, which glibc
// finds from the return address. So the pass-through path must be a tail jump
// into glibc's dlsym with the caller's return address still on the stack: the
// exported `dlsym` is a small assembly stub around nz_shim_dlsym_lookup.
#include <dlfcn.h>

#include <atomic>
#include <cstring>

#include "hook_table.h"
#include "real_driver.h"

namespace nz::shim {
namespace {

thread_local bool t_in_lookup = false;

// The main program's handle: dlsym on it searches the global scope, where a
// preloaded library (us) comes first, so it is treated like RTLD_DEFAULT.
void* main_program_handle() noexcept {
  static void* const handle = dlopen(nullptr, RTLD_LAZY | RTLD_NOLOAD);
  return handle;
}

bool handle_sees_driver(void* handle) noexcept {
  if (handle == RTLD_DEFAULT || handle == RTLD_NEXT) return true;
  if (handle == main_program_handle()) return true;
  // Only the driver's own handle: never rewrite lookups in unrelated libraries
  // (a library may define its own cuXxx helpers).
  return handle == driver_handle();
}

// glibc's dlsym, found from here: this file is built without sanitizer
// instrumentation (meson.build), and a sanitizer runtime calls dlsym while it
// initialises, before real_dlsym (instrumented there) may run.
DlsymFn glibc_dlsym() noexcept {
  for (const char* version : {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17"})
    if (void* p = dlvsym(RTLD_NEXT, "dlsym", version)) return reinterpret_cast<DlsymFn>(p);
  return real_dlsym();  // it says why it found none
}

}  // namespace
}  // namespace nz::shim

// glibc's dlsym, the stub's pass-through target (hidden: referenced PC-relative).
extern "C" {
[[gnu::visibility("hidden")]] nz::shim::DlsymFn nz_shim_glibc_dlsym_for_stub = nullptr;
}

// wrap_nccl.cpp: our NCCL definition for dlsym(handle of libnccl.so.2, name).
extern "C" [[gnu::visibility("hidden")]] void* nz_shim_nccl_lookup(void* handle, const char* symbol) noexcept;

// Returns our wrapper for (handle, symbol), or null to let glibc answer.
// Also makes sure glibc's dlsym is resolved (the stub jumps to it).
extern "C" [[gnu::visibility("hidden")]] void* nz_shim_dlsym_lookup(void* handle,
                                                                   const char* symbol) noexcept {
  using namespace nz::shim;
  if (!nz_shim_glibc_dlsym_for_stub) nz_shim_glibc_dlsym_for_stub = glibc_dlsym();
  if (!symbol) return nullptr;
  const bool driver_name = symbol[0] == 'c' && symbol[1] == 'u';
  const bool nccl_name = symbol[0] == 'n' && std::strncmp(symbol, "nccl", 4) == 0;
  if (!driver_name && !nccl_name) return nullptr;  // the fast exit
  if (t_in_lookup || loading_on_this_thread()) return nullptr;
  t_in_lookup = true;
  void* result = nullptr;
  if (nccl_name) {
    result = nz_shim_nccl_lookup(handle, symbol);
    t_in_lookup = false;
    return result;
  }
  if (const HookEntry* e = find_exported(symbol); e && handle_sees_driver(handle)) {
    // Keep "symbol absent" answers truthful: feature probes must still see
    // that the installed driver lacks a call.
    if (real_entry(e->hook) || (driver_handle() == nullptr && handle == RTLD_DEFAULT))
      result = e->wrapper;
  }
  t_in_lookup = false;
  return result;
}


namespace {
// Set the stub's jump target before any user code can call dlsym.
[[gnu::constructor(101)]] void resolve_stub_target() {
  nz_shim_glibc_dlsym_for_stub = nz::shim::real_dlsym();
}
}  // namespace

#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl dlsym\n"
    ".type dlsym, %function\n"
    ".p2align 4\n"
    "dlsym:\n"
    "  push %rdi\n"
    "  push %rsi\n"
    "  sub $8, %rsp\n"  // 16-byte stack alignment for the call
    "  call nz_shim_dlsym_lookup\n"
    "  add $8, %rsp\n"
    "  pop %rsi\n"
    "  pop %rdi\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    "  mov nz_shim_glibc_dlsym_for_stub(%rip), %rax\n"
    "  jmp *%rax\n"  // tail jump: glibc sees our caller's return address
    "1:\n"
    "  ret\n"
    ".size dlsym, .-dlsym\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl dlsym\n"
    ".type dlsym, %function\n"
    ".p2align 4\n"
    "dlsym:\n"
    "  stp x29, x30, [sp, #-32]!\n"
    "  mov x29, sp\n"
    "  stp x0, x1, [sp, #16]\n"
    "  bl nz_shim_dlsym_lookup\n"
    "  mov x9, x0\n"
    "  ldp x0, x1, [sp, #16]\n"
    "  ldp x29, x30, [sp], #32\n"
    "  cbz x9, 1f\n"
    "  mov x0, x9\n"
    "  ret\n"
    "1:\n"
    "  adrp x9, nz_shim_glibc_dlsym_for_stub\n"
    "  ldr x9, [x9, :lo12:nz_shim_glibc_dlsym_for_stub]\n"
    "  br x9\n"
    ".size dlsym, .-dlsym\n");
#else
#error "dlsym_override.cpp: add the dlsym stub for this architecture"
#endif
