// fw_kernels.cpp: the simulator kernel module (tests/sim/nzsim.h) of the
// framework-behaviour suite: kernels that read the way real libraries do —
// from a base pointer across a whole buffer, backwards from a one-past-the-end
// pointer, through a pointer array in device memory, through a TMA descriptor
// passed by value — plus a kernel that waits for the host (to keep work queued).
#include <dlfcn.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>

#include "fw_hash.h"
#include "nzsim.h"

namespace {

template <typename T>
T param(const nzsim_launch* l, unsigned i) {
  T v;
  std::memcpy(&v, l->params[i], sizeof v);
  return v;
}

// sum_bytes(const uint8_t* p, uint64_t n, uint64_t* out)
int sum_bytes(const nzsim_launch* l) {
  *param<uint64_t*>(l, 2) = fw::hash_bytes(param<const uint8_t*>(l, 0), param<uint64_t>(l, 1));
  return 0;
}

// sum_back(const uint8_t* end, uint64_t n, uint64_t* out): the n bytes before end.
int sum_back(const nzsim_launch* l) {
  const auto n = param<uint64_t>(l, 1);
  *param<uint64_t*>(l, 2) = fw::hash_bytes(param<const uint8_t*>(l, 0) - n, n);
  return 0;
}

// sum_bytes_nfirst(uint64_t n, const uint8_t* p, uint64_t* out): another layout.
int sum_bytes_nfirst(const nzsim_launch* l) {
  *param<uint64_t*>(l, 2) = fw::hash_bytes(param<const uint8_t*>(l, 1), param<uint64_t>(l, 0));
  return 0;
}

// fill_bytes(uint8_t* p, uint64_t n, uint32_t v)
int fill_bytes(const nzsim_launch* l) {
  std::memset(param<uint8_t*>(l, 0), static_cast<int>(param<uint32_t>(l, 2) & 0xff), param<uint64_t>(l, 1));
  return 0;
}

// sum_ptrs(const uint8_t* const* ptrs, uint64_t count, uint64_t n_each, uint64_t* out):
// a grouped-GEMM-like read through pointers stored in device memory.
int sum_ptrs(const nzsim_launch* l) {
  const auto* ptrs = param<const uint8_t* const*>(l, 0);
  const auto count = param<uint64_t>(l, 1), n = param<uint64_t>(l, 2);
  uint64_t h = 0;
  for (uint64_t i = 0; i < count; ++i) h = h * 31 + fw::hash_bytes(ptrs[i], n);
  *param<uint64_t*>(l, 3) = h;
  return 0;
}

// sum_tma(CUtensorMap map (128 bytes, by value), uint64_t n, uint64_t* out):
// reads n bytes at the descriptor's global address, as a Hopper GEMM's TMA unit would.
int sum_tma(const nzsim_launch* l) {
  static auto decode =
      reinterpret_cast<nzsim_tensor_map_address_fn>(dlsym(RTLD_DEFAULT, "nzsim_tensor_map_address"));
  if (decode == nullptr) return 1;
  const auto* base = static_cast<const uint8_t*>(decode(l->params[0]));
  *param<uint64_t*>(l, 2) = fw::hash_bytes(base, param<uint64_t>(l, 1));
  return 0;
}

// sum_tex(CUtexObject tex (by value), uint64_t n, uint64_t* out): reads n
// bytes of the texture's linear resource, as a kernel sampling it would.
int sum_tex(const nzsim_launch* l) {
  static auto address = reinterpret_cast<nzsim_texture_address_fn>(dlsym(RTLD_DEFAULT, "nzsim_texture_address"));
  if (address == nullptr) return 1;
  const auto* base = static_cast<const uint8_t*>(address(param<unsigned long long>(l, 0)));
  if (base == nullptr) return 1;
  *param<uint64_t*>(l, 2) = fw::hash_bytes(base, param<uint64_t>(l, 1));
  return 0;
}

// wait_then_sum(const volatile uint32_t* flag, const uint8_t* p, uint64_t n, uint64_t* out):
// spins until the host sets *flag (at most 30 s), then reads p: work that stays queued.
// The flag is read atomically (the host thread that sets it stores atomically:
// ThreadSanitizer sees a kernel here as another host thread).
int wait_then_sum(const nzsim_launch* l) {
  const auto* flag = param<const uint32_t*>(l, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  *param<uint64_t*>(l, 3) = fw::hash_bytes(param<const uint8_t*>(l, 1), param<uint64_t>(l, 2));
  return 0;
}

// make_ptrs(const uint8_t* base, uint64_t stride, uint64_t count, const uint8_t** out):
// out[i] = base + i * stride — pointers a kernel writes into device memory
// (a grouped GEMM's setup kernel building its operand arrays on the device).
int make_ptrs(const nzsim_launch* l) {
  const auto* base = param<const uint8_t*>(l, 0);
  const auto stride = param<uint64_t>(l, 1), count = param<uint64_t>(l, 2);
  auto** out = param<const uint8_t**>(l, 3);
  for (uint64_t i = 0; i < count; ++i) out[i] = base + i * stride;
  return 0;
}

const nzsim_param k3x8[] = {{0, 8}, {8, 8}, {16, 8}};
const nzsim_param kFill[] = {{0, 8}, {8, 8}, {16, 4}};
const nzsim_param k4x8[] = {{0, 8}, {8, 8}, {16, 8}, {24, 8}};
const nzsim_param kTma[] = {{0, 128}, {128, 8}, {136, 8}};
// sum_bytes_nfirst first: after another module's unload it gets the freed handle.
const nzsim_kernel kKernels[] = {
    {"sum_bytes_nfirst", 3, k3x8, sum_bytes_nfirst},
    {"sum_bytes", 3, k3x8, sum_bytes},
    {"sum_back", 3, k3x8, sum_back},
    {"fill_bytes", 3, kFill, fill_bytes},
    {"sum_ptrs", 4, k4x8, sum_ptrs},
    {"sum_tma", 3, kTma, sum_tma},
    {"sum_tex", 3, k3x8, sum_tex},
    {"wait_then_sum", 4, k4x8, wait_then_sum},
    {"make_ptrs", 4, k4x8, make_ptrs},
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count,
                                                                                       unsigned* abi_version) {
  *count = sizeof kKernels / sizeof kKernels[0];
  *abi_version = NZSIM_ABI_VERSION;
  return kKernels;
}
