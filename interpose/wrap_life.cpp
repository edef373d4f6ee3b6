// wrap_life.cpp: module globals and unloads, context teardown (the runtime
// must forget handles and release what it holds before the driver does), and
// the synchronising calls where sticky errors surface.
#include "wrap_common.h"

using nz::shim::Hook;
using nz::shim::real_of;

namespace nz::shim {
namespace {

template <Hook H, typename Handle>
CUresult unload(Handle h) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(Handle)>(H);
  if (!real) return missing_entry(H);
  CUresult r = real(h);
  // After the real call: a launch racing with it cannot re-cache the old layout.
  if (r == CUDA_SUCCESS && rt::active()) rt::on_module_unload(reinterpret_cast<const void*>(h));
  return r;
}

// Where a module's global lives: its kernels read it without a parameter, so
// pointers the program copies into it are found by the copy (module_globals.cpp).
template <Hook H, typename Handle>
CUresult get_global(CUdeviceptr* dptr, size_t* bytes, Handle h, const char* name) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr*, size_t*, Handle, const char*)>(H);
  if (!real) return missing_entry(H);
  if (dptr == nullptr && bytes == nullptr) return real(dptr, bytes, h, name);  // the driver's answer to that
  CUdeviceptr at = 0;
  size_t size = 0;
  const CUresult r = real(&at, &size, h, name);  // (both asked: the caller may want either)
  if (r == CUDA_SUCCESS) {
    if (dptr) *dptr = at;
    if (bytes) *bytes = size;
    if (rt::active()) rt::on_module_global(reinterpret_cast<const void*>(h), at, size);
  }
  return r;
}

template <Hook H>
CUresult ctx_destroy(CUcontext ctx) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUcontext)>(H);
  if (!real) return missing_entry(H);
  if (rt::active()) rt::on_context_destroy(ctx, 0, false);
  return real(ctx);
}

template <Hook H>
CUresult primary_reset(CUdevice dev) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdevice)>(H);
  if (!real) return missing_entry(H);
  if (rt::active()) rt::on_context_destroy(nullptr, dev, true);
  return real(dev);
}

// After the real call: only access the driver granted is mirrored.
template <Hook H>
CUresult enable_peer_access(CUcontext peer, unsigned flags) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUcontext, unsigned)>(H);
  if (!real) return missing_entry(H);
  const CUresult r = real(peer, flags);
  if (r == CUDA_SUCCESS && rt::active()) rt::on_peer_access_enabled(peer);
  return r;
}

// A destroyed stream's handle may name a new stream later while its queued
// work still runs: the runtime stops treating uses on that handle as ordered.
template <Hook H>
CUresult stream_destroy(CUstream s) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUstream)>(H);
  if (!real) return missing_entry(H);
  rt::note_stream_destroyed();
  return real(s);
}

inline CUresult note(CUresult r, const char* api) noexcept {
  if (rt::is_sticky_error(r) && rt::active()) rt::on_sticky_error(r, api);
  return r;
}

template <Hook H, bool PT>
CUresult stream_sync(CUstream s) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUstream)>(H);
  if (!real) return missing_entry(H);
  return note(real(s), "cuStreamSynchronize");
}

}  // namespace
}  // namespace nz::shim

NZ_WRAPPER CUresult nzw_ModuleUnload(CUmodule m) noexcept { return nz::shim::unload<Hook::ModuleUnload>(m); }
NZ_WRAPPER CUresult nzw_LibraryUnload(CUlibrary l) noexcept { return nz::shim::unload<Hook::LibraryUnload>(l); }
NZ_WRAPPER CUresult nzw_ModuleGetGlobal_v2(CUdeviceptr* p, size_t* n, CUmodule m, const char* name) noexcept {
  return nz::shim::get_global<Hook::ModuleGetGlobal_v2>(p, n, m, name);
}
NZ_WRAPPER CUresult nzw_LibraryGetGlobal(CUdeviceptr* p, size_t* n, CUlibrary l, const char* name) noexcept {
  return nz::shim::get_global<Hook::LibraryGetGlobal>(p, n, l, name);
}
NZ_WRAPPER CUresult nzw_CtxDestroy_v1(CUcontext c) noexcept { return nz::shim::ctx_destroy<Hook::CtxDestroy_v1>(c); }
NZ_WRAPPER CUresult nzw_CtxDestroy_v2(CUcontext c) noexcept { return nz::shim::ctx_destroy<Hook::CtxDestroy_v2>(c); }
NZ_WRAPPER CUresult nzw_CtxEnablePeerAccess(CUcontext peer, unsigned int flags) noexcept {
  return nz::shim::enable_peer_access<Hook::CtxEnablePeerAccess>(peer, flags);
}
NZ_WRAPPER CUresult nzw_DevicePrimaryCtxReset_v1(CUdevice d) noexcept {
  return nz::shim::primary_reset<Hook::DevicePrimaryCtxReset_v1>(d);
}
NZ_WRAPPER CUresult nzw_DevicePrimaryCtxReset_v2(CUdevice d) noexcept {
  return nz::shim::primary_reset<Hook::DevicePrimaryCtxReset_v2>(d);
}

NZ_WRAPPER CUresult nzw_StreamDestroy_v1(CUstream s) noexcept {
  return nz::shim::stream_destroy<Hook::StreamDestroy_v1>(s);
}
NZ_WRAPPER CUresult nzw_StreamDestroy_v2(CUstream s) noexcept {
  return nz::shim::stream_destroy<Hook::StreamDestroy_v2>(s);
}

NZ_WRAPPER CUresult nzw_CtxSynchronize() noexcept {
  NZ_ENTER(CtxSynchronize);
  auto real = real_of<CUresult (*)()>(Hook::CtxSynchronize);
  if (!real) return nz::shim::missing_entry(Hook::CtxSynchronize);
  return nz::shim::note(real(), "cuCtxSynchronize");
}

// CUDA 13: the context to synchronize is named (null: the current one).
NZ_WRAPPER CUresult nzw_CtxSynchronize_v2(CUcontext ctx) noexcept {
  NZ_ENTER(CtxSynchronize_v2);
  auto real = real_of<CUresult (*)(CUcontext)>(Hook::CtxSynchronize_v2);
  if (!real) return nz::shim::missing_entry(Hook::CtxSynchronize_v2);
  return nz::shim::note(real(ctx), "cuCtxSynchronize");
}

NZ_WRAPPER CUresult nzw_EventSynchronize(CUevent e) noexcept {
  NZ_ENTER(EventSynchronize);
  auto real = real_of<CUresult (*)(CUevent)>(Hook::EventSynchronize);
  if (!real) return nz::shim::missing_entry(Hook::EventSynchronize);
  return nz::shim::note(real(e), "cuEventSynchronize");
}

NZ_WRAP_PAIR(StreamSynchronize, StreamSynchronize_ptsz, nz::shim::stream_sync, (CUstream s), (s))
