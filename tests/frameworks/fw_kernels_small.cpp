// fw_kernels_small.cpp: a module with one kernel of a single 8-byte parameter.
// Loaded, launched and unloaded before the main module is loaded again, so
// that the main module's first kernel reuses its handle (tests/sim recycles
// freed handles as a real driver does).
#include "nzsim.h"

namespace {
int noop(const nzsim_launch*) { return 0; }
const nzsim_param kOne[] = {{0, 8}};
const nzsim_kernel kKernels[] = {{"noop_u64", 1, kOne, noop}};
}  // namespace

extern "C" __attribute__((visibility("default"))) const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count,
                                                                                       unsigned* abi_version) {
  *count = 1;
  *abi_version = NZSIM_ABI_VERSION;
  return kKernels;
}
