// real_driver.h: the real libcuda.so.1 behind the shim.
//
// Everything here reaches the real driver without passing through our own
// overrides: the real dlsym comes from dlvsym(RTLD_NEXT, "dlsym", ...), and the
// driver is dlopen'ed RTLD_LOCAL so its symbols never shadow ours.
#pragma once

namespace nz::shim {

using DlsymFn = void* (*)(void*, const char*);

// glibc's dlsym (never our override). Resolved on first use; never null after.
DlsymFn real_dlsym() noexcept;

// The handle of the real libcuda.so.1, loading it on first use (null if the
// library cannot be loaded; the reason is logged once).
void* driver_handle() noexcept;

// real_dlsym(driver_handle(), name), or null.
void* real_driver_symbol(const char* name) noexcept;

// True while this thread is inside the shim's own driver loading (so re-entrant
// dlsym/driver calls from library constructors go straight through).
bool loading_on_this_thread() noexcept;

// Called by the cuInit wrapper after the real cuInit succeeded: fills the
// runtime's table of real entry points and starts the runtime (once).
void notify_driver_initialised() noexcept;

}  // namespace nz::shim
