// rt_test_kernels.cpp: a simulator kernel module (tests/sim/nzsim.h) with the
// access patterns the runtime must see through: plain pointers, interior
// pointers, and a struct of pointers passed by value.
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

const nzsim_param kAddParams[] = {{0, 8}, {8, 8}, {16, 8}};
const nzsim_param kSumParams[] = {{0, 8}, {8, 8}, {16, 8}};
const nzsim_param kPairParams[] = {{0, 24}, {24, 8}};
const nzsim_kernel kKernels[] = {
    {"add_u16", 3, kAddParams, add_u16},
    {"sum_u16", 3, kSumParams, sum_u16},
    {"sum_pair", 2, kPairParams, sum_pair},
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count,
                                                                                       unsigned* abi_version) {
  *count = sizeof kKernels / sizeof kKernels[0];
  *abi_version = NZSIM_ABI_VERSION;
  return kKernels;
}
