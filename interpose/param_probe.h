// param_probe.h: NEUZIP_PROBE_PARAMS=1 logs, once per launched handle, whether
// it is a CUkernel or a CUfunction and what the driver's parameter queries
// (cuKernelGetParamInfo, cuFuncGetParamInfo) answer for it. A measurement
// tool for real programs (which handles does PyTorch launch, and can the
// runtime learn their parameter layout?), off by default: one predictable
// branch in the launch path otherwise.
#pragma once

namespace nz::shim {

extern const bool g_probe_params;

// Called from the launch wrappers with the handle as launched.
void probe_launch_params(const void* handle) noexcept;

}  // namespace nz::shim
