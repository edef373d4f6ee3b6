// wrap_launch.cpp: kernel launches (the hot path: when nothing is compressed the
// runtime's before_launch is a lock-free range check) and the calls that tell
// CUkernel handles apart from CUfunctions.
#include "kernel_registry.h"
#include "param_probe.h"
#include "wrap_common.h"

namespace nz::shim {
namespace {

rt::LaunchDesc launch_desc(CUfunction f, void** params, void** extra, CUstream stream,
                           bool per_thread, const char* api) noexcept {
  rt::LaunchDesc d{};
  if (g_probe_params) [[unlikely]] probe_launch_params(f);
  // The CUDA runtime launches CUkernel handles cast to CUfunction.
  if (is_known_kernel(f))
    d.kernel = reinterpret_cast<CUkernel>(f);
  else
    d.func = f;
  d.kernel_params = params;
  d.extra = extra;
  d.stream = stream;
  d.per_thread_stream = per_thread;
  d.api = api;
  return d;
}

template <typename Forward>
CUresult run_launch(const rt::LaunchDesc& d, Forward forward) noexcept {
  CUresult r = rt::before_launch(d);
  if (r != CUDA_SUCCESS) return r;
  r = forward();
  rt::after_launch(d, r);
  if (rt::is_sticky_error(r)) rt::on_sticky_error(r, d.api);
  return r;
}

template <Hook H, bool PT>
CUresult launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                unsigned bz, unsigned shared, CUstream st, void** params, void** extra) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                                   unsigned, unsigned, CUstream, void**, void**)>(H);
  if (!real) [[unlikely]]
    return missing_entry(H);
  if (!rt::active()) return real(f, gx, gy, gz, bx, by, bz, shared, st, params, extra);
  return run_launch(launch_desc(f, params, extra, st, PT, "cuLaunchKernel"), [&] {
    return real(f, gx, gy, gz, bx, by, bz, shared, st, params, extra);
  });
}

template <Hook H, bool PT>
CUresult launch_ex(const CUlaunchConfig* config, CUfunction f, void** params, void** extra) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(const CUlaunchConfig*, CUfunction, void**, void**)>(H);
  if (!real) [[unlikely]]
    return missing_entry(H);
  if (!rt::active() || !config) return real(config, f, params, extra);
  return run_launch(launch_desc(f, params, extra, config->hStream, PT, "cuLaunchKernelEx"),
                    [&] { return real(config, f, params, extra); });
}

template <Hook H, bool PT>
CUresult launch_coop(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                     unsigned bz, unsigned shared, CUstream st, void** params) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                                   unsigned, unsigned, CUstream, void**)>(H);
  if (!real) [[unlikely]]
    return missing_entry(H);
  if (!rt::active()) return real(f, gx, gy, gz, bx, by, bz, shared, st, params);
  return run_launch(launch_desc(f, params, nullptr, st, PT, "cuLaunchCooperativeKernel"),
                    [&] { return real(f, gx, gy, gz, bx, by, bz, shared, st, params); });
}

}  // namespace
}  // namespace nz::shim

NZ_WRAP_PAIR(LaunchKernel, LaunchKernel_ptsz, nz::shim::launch,
             (CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
              unsigned bz, unsigned shared, CUstream st, void** params, void** extra),
             (f, gx, gy, gz, bx, by, bz, shared, st, params, extra))
NZ_WRAP_PAIR(LaunchKernelEx, LaunchKernelEx_ptsz, nz::shim::launch_ex,
             (const CUlaunchConfig* c, CUfunction f, void** params, void** extra),
             (c, f, params, extra))
NZ_WRAP_PAIR(LaunchCooperativeKernel, LaunchCooperativeKernel_ptsz, nz::shim::launch_coop,
             (CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
              unsigned bz, unsigned shared, CUstream st, void** params),
             (f, gx, gy, gz, bx, by, bz, shared, st, params))

NZ_WRAPPER CUresult nzw_LibraryGetKernel(CUkernel* k, CUlibrary lib, const char* name) noexcept {
  NZ_ENTER(LibraryGetKernel);
  using nz::shim::Hook;
  auto real = nz::shim::real_of<CUresult (*)(CUkernel*, CUlibrary, const char*)>(Hook::LibraryGetKernel);
  if (!real) return nz::shim::missing_entry(Hook::LibraryGetKernel);
  CUresult r = real(k, lib, name);
  if (r == CUDA_SUCCESS && k) nz::shim::remember_kernel(*k);
  return r;
}

NZ_WRAPPER CUresult nzw_KernelGetFunction(CUfunction* f, CUkernel k) noexcept {
  NZ_ENTER(KernelGetFunction);
  using nz::shim::Hook;
  auto real = nz::shim::real_of<CUresult (*)(CUfunction*, CUkernel)>(Hook::KernelGetFunction);
  if (!real) return nz::shim::missing_entry(Hook::KernelGetFunction);
  CUresult r = real(f, k);
  // The handle came in as a CUkernel; remember it in case it was obtained elsewhere.
  if (r == CUDA_SUCCESS) nz::shim::remember_kernel(k);
  return r;
}
