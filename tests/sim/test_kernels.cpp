// Kernels for the simulator's tests, written as an nzsim module (nzsim.h).
#include <stdint.h>
#include <unistd.h>

#include "nzsim.h"

namespace {

template <typename T>
T arg(const nzsim_launch* l, unsigned i) {
  return *static_cast<const T*>(l->params[i]);
}

// vec_add(const float* a, const float* b, float* c, int n)
int vec_add(const nzsim_launch* l) {
  auto a = arg<const float*>(l, 0);
  auto b = arg<const float*>(l, 1);
  auto c = arg<float*>(l, 2);
  int n = arg<int>(l, 3);
  for (int i = 0; i < n; ++i) c[i] = a[i] + b[i];
  return 0;
}

// fill_u32(uint32_t* p, uint32_t value, uint64_t n)
int fill_u32(const nzsim_launch* l) {
  auto p = arg<uint32_t*>(l, 0);
  auto v = arg<uint32_t>(l, 1);
  auto n = arg<uint64_t>(l, 2);
  for (uint64_t i = 0; i < n; ++i) p[i] = v;
  return 0;
}

// add_u32(uint32_t* p, uint32_t value, uint64_t n): p[i] += value; slow on purpose
int add_u32(const nzsim_launch* l) {
  auto p = arg<uint32_t*>(l, 0);
  auto v = arg<uint32_t>(l, 1);
  auto n = arg<uint64_t>(l, 2);
  for (uint64_t i = 0; i < n; ++i) {
    volatile uint32_t* q = p + i;
    *q = *q + v;
  }
  return 0;
}

// sum_u32(const uint32_t* p, uint64_t n, uint64_t* out)
int sum_u32(const nzsim_launch* l) {
  auto p = arg<const uint32_t*>(l, 0);
  auto n = arg<uint64_t>(l, 1);
  auto out = arg<uint64_t*>(l, 2);
  uint64_t s = 0;
  for (uint64_t i = 0; i < n; ++i) s += p[i];
  *out = s;
  return 0;
}

// sleep_us(uint32_t us): keeps a stream busy
int sleep_us(const nzsim_launch* l) {
  usleep(arg<uint32_t>(l, 0));
  return 0;
}

// record_launch(uint32_t* out): grid.x, block.x, shared bytes, param count sanity
int record_launch(const nzsim_launch* l) {
  auto out = arg<uint32_t*>(l, 0);
  out[0] = l->grid.x;
  out[1] = l->grid.y;
  out[2] = l->block.x;
  out[3] = l->shared_bytes;
  out[4] = static_cast<uint32_t>(arg<uint8_t>(l, 1));  // a 1-byte param at offset 8
  out[5] = arg<uint32_t>(l, 2);                         // a 4-byte param at offset 12
  return 0;
}

// trap(): a device-side assertion failure
int trap(const nzsim_launch*) { return 1; }

// A module global (cuModuleGetGlobal "counter"): add_to_global adds its u32
// parameter to it, without a pointer among its parameters.
uint64_t g_counter = 0;  // the global's device address
int add_to_global(const nzsim_launch* l) {
  *reinterpret_cast<uint32_t*>(g_counter) += *static_cast<const uint32_t*>(l->params[0]);
  return 0;
}
const nzsim_global kGlobals[] = {{"counter", 64, &g_counter}};

const nzsim_param kVecAdd[] = {{0, 8}, {8, 8}, {16, 8}, {24, 4}};
const nzsim_param kFill[] = {{0, 8}, {8, 4}, {16, 8}};
const nzsim_param kSum[] = {{0, 8}, {8, 8}, {16, 8}};
const nzsim_param kSleep[] = {{0, 4}};
const nzsim_param kRecord[] = {{0, 8}, {8, 1}, {12, 4}};
const nzsim_param kAddGlobal[] = {{0, 4}};

const nzsim_kernel kKernels[] = {
    {"vec_add", 4, kVecAdd, vec_add},
    {"fill_u32", 3, kFill, fill_u32},
    {"add_u32", 3, kFill, add_u32},
    {"sum_u32", 3, kSum, sum_u32},
    {"sleep_us", 1, kSleep, sleep_us},
    {"record_launch", 3, kRecord, record_launch},
    {"trap", 0, nullptr, trap},
    {"add_to_global", 1, kAddGlobal, add_to_global},
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count,
                                                                                         unsigned* abi_version) {
  *count = sizeof(kKernels) / sizeof(kKernels[0]);
  *abi_version = NZSIM_ABI_VERSION;
  return kKernels;
}

extern "C" __attribute__((visibility("default"))) const nzsim_global* NZSIM_MODULE_GLOBALS(unsigned* count) {
  *count = sizeof(kGlobals) / sizeof(kGlobals[0]);
  return kGlobals;
}
