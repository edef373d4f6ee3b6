// fw_kernels_globals.cpp: a module whose kernel reads a weight through a
// module global (a __device__ variable the host fills with
// cudaMemcpyToSymbol), with no pointer among its parameters. Loaded and
// unloaded by the ModuleGlobals.* cases themselves.
#include <cstdint>
#include <cstring>

#include "fw_hash.h"
#include "nzsim.h"

namespace {

// The global's layout: a size first, then the pointer (a struct of
// parameters as a program would keep it).
struct Table {
  uint64_t bytes;
  uint64_t ptr;
};
uint64_t g_table = 0;  // the global's device address (set by the simulator at load)

// sum_through_table(uint64_t* out): the hash of the bytes the table points to.
int sum_through_table(const nzsim_launch* l) {
  const auto* t = reinterpret_cast<const Table*>(g_table);
  uint64_t* out = nullptr;
  std::memcpy(&out, l->params[0], sizeof out);
  *out = fw::hash_bytes(reinterpret_cast<const uint8_t*>(t->ptr), t->bytes);
  return 0;
}

const nzsim_param kOut[] = {{0, 8}};
const nzsim_kernel kKernels[] = {{"sum_through_table", 1, kOut, sum_through_table}};
const nzsim_global kGlobals[] = {{"table", 256, &g_table}};

}  // namespace

extern "C" __attribute__((visibility("default"))) const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count,
                                                                                       unsigned* abi_version) {
  *count = 1;
  *abi_version = NZSIM_ABI_VERSION;
  return kKernels;
}

extern "C" __attribute__((visibility("default"))) const nzsim_global* NZSIM_MODULE_GLOBALS(unsigned* count) {
  *count = 1;
  return kGlobals;
}
