// rt_test_kernels.cpp: a simulator kernel module (tests/sim/nzsim.h) with the
// access patterns the runtime must see through: plain pointers, interior
// pointers, a struct of pointers passed by value, an array of pointers in
// device memory (batched GEMMs) written by the host or by a kernel (grouped
// GEMMs), a TMA descriptor passed by value (Hopper GEMMs).
#include <dlfcn.h>

#include <cstdint>
#include <cstring>

#include "nzsim.h"

namespace {

template <typename T>
T param(const nzsim_launch* l, unsigned i) {
  T v;
  std::memcpy(&v, l->params[i], sizeof v);
  return v;
}

// add_u16(uint16_t* dst, const uint16_t* src, uint64_t n): dst[i] += src[i] (wrapping).
int add_u16(const nzsim_launch* l) {
  auto* dst = param<uint16_t*>(l, 0);
  auto* src = param<const uint16_t*>(l, 1);
  const auto n = param<uint64_t>(l, 2);
  for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<uint16_t>(dst[i] + src[i]);
  return 0;
}

// sum_u16(const uint16_t* src, uint64_t n, uint64_t* out): *out = a position-weighted sum.
int sum_u16(const nzsim_launch* l) {
  auto* src = param<const uint16_t*>(l, 0);
  const auto n = param<uint64_t>(l, 1);
  auto* out = param<uint64_t*>(l, 2);
  uint64_t s = 0;
  for (uint64_t i = 0; i < n; ++i) s = s * 1000003u + src[i];
  *out = s;
  return 0;
}

struct PairView {
  const uint16_t* a;
  const uint16_t* b;
  uint64_t n;
};

// sum_pair(PairView v, uint64_t* out): *out = sum over a[i] * 3 + b[i]; v passed by value.
int sum_pair(const nzsim_launch* l) {
  const auto v = param<PairView>(l, 0);
  auto* out = param<uint64_t*>(l, 1);
  uint64_t s = 0;
  for (uint64_t i = 0; i < v.n; ++i) s = s * 31u + v.a[i] * 3u + v.b[i];
  *out = s;
  return 0;
}

// One entry of sum_list's array: a slice of bf16 words.
struct ListEntry {
  const uint16_t* p;
  uint64_t n;
};

// sum_list(const ListEntry* list, uint64_t k, uint64_t* out): the sum_u16 of
// the k slices end to end; the list itself is in device memory, written by a
// host-to-device copy (what batched and grouped GEMMs read their operands through).
int sum_list(const nzsim_launch* l) {
  auto* list = param<const ListEntry*>(l, 0);
  const auto k = param<uint64_t>(l, 1);
  auto* out = param<uint64_t*>(l, 2);
  uint64_t s = 0;
  for (uint64_t j = 0; j < k; ++j)
    for (uint64_t i = 0; i < list[j].n; ++i) s = s * 1000003u + list[j].p[i];
  *out = s;
  return 0;
}

// build_list(ListEntry* list, const uint16_t* a, uint64_t na, const uint16_t* b,
// uint64_t nb): writes sum_list's two entries on the device from the pointers
// it was given (a grouped GEMM's setup kernel: the launch that reads through
// them names no weight).
int build_list(const nzsim_launch* l) {
  auto* list = param<ListEntry*>(l, 0);
  list[0] = {param<const uint16_t*>(l, 1), param<uint64_t>(l, 2)};
  list[1] = {param<const uint16_t*>(l, 3), param<uint64_t>(l, 4)};
  return 0;
}

// sum_tma(CUtensorMap m, uint64_t n, uint64_t* out): sum_u16 of the n words the
// descriptor's tensor starts with (its address only the simulator can read back).
int sum_tma(const nzsim_launch* l) {
  // The tests load the simulator with RTLD_LOCAL: asked of its handle.
  static const auto decode = [] {
    void* sim = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    void* f = dlsym(sim != nullptr ? sim : RTLD_DEFAULT, "nzsim_tensor_map_address");
    return reinterpret_cast<nzsim_tensor_map_address_fn>(f);
  }();
  const auto* src = decode != nullptr ? static_cast<const uint16_t*>(decode(l->params[0])) : nullptr;
  if (src == nullptr) return 1;
  const auto n = param<uint64_t>(l, 1);
  auto* out = param<uint64_t*>(l, 2);
  uint64_t s = 0;
  for (uint64_t i = 0; i < n; ++i) s = s * 1000003u + src[i];
  *out = s;
  return 0;
}

const nzsim_param kAddParams[] = {{0, 8}, {8, 8}, {16, 8}};
const nzsim_param kTmaParams[] = {{0, 128}, {128, 8}, {136, 8}};
const nzsim_param kSumParams[] = {{0, 8}, {8, 8}, {16, 8}};
const nzsim_param kPairParams[] = {{0, 24}, {24, 8}};
const nzsim_param kBuildParams[] = {{0, 8}, {8, 8}, {16, 8}, {24, 8}, {32, 8}};
const nzsim_kernel kKernels[] = {
    {"add_u16", 3, kAddParams, add_u16},
    {"sum_u16", 3, kSumParams, sum_u16},
    {"sum_pair", 2, kPairParams, sum_pair},
    {"sum_list", 3, kSumParams, sum_list},
    {"sum_tma", 3, kTmaParams, sum_tma},
    {"build_list", 5, kBuildParams, build_list},
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count,
                                                                                       unsigned* abi_version) {
  *count = sizeof kKernels / sizeof kKernels[0];
  *abi_version = NZSIM_ABI_VERSION;
  return kKernels;
}
