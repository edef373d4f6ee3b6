// kernel_registry.cpp: open-addressing set of CUkernel handles.
#include "kernel_registry.h"

#include <atomic>
#include <cstdint>

#include "shim_log.h"

namespace nz::shim {
namespace {

// Programs have thousands of kernels, not millions; when full, later handles
// are reported as CUfunctions (the runtime then scans parameters by words).
constexpr size_t kSlots = size_t{1} << 16;
std::atomic<uintptr_t> g_slots[kSlots];
std::atomic<size_t> g_used{0};

size_t slot_of(uintptr_t key) noexcept {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdULL;
  key ^= key >> 33;
  return static_cast<size_t>(key) & (kSlots - 1);
}

}  // namespace

void remember_kernel(CUkernel k) noexcept {
  const auto key = reinterpret_cast<uintptr_t>(k);
  if (key == 0) return;
  if (g_used.load(std::memory_order_relaxed) >= kSlots / 2) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) log_line("kernel handle table full; further CUkernels untracked");
    return;
  }
  for (size_t i = slot_of(key), n = 0; n < kSlots; i = (i + 1) & (kSlots - 1), ++n) {
    uintptr_t cur = g_slots[i].load(std::memory_order_acquire);
    if (cur == key) return;
    if (cur == 0) {
      if (g_slots[i].compare_exchange_strong(cur, key, std::memory_order_acq_rel)) {
        g_used.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (cur == key) return;
    }
  }
}

bool is_known_kernel(const void* handle) noexcept {
  const auto key = reinterpret_cast<uintptr_t>(handle);
  if (key == 0 || g_used.load(std::memory_order_relaxed) == 0) return false;
  for (size_t i = slot_of(key), n = 0; n < kSlots; i = (i + 1) & (kSlots - 1), ++n) {
    const uintptr_t cur = g_slots[i].load(std::memory_order_acquire);
    if (cur == key) return true;
    if (cur == 0) return false;
  }
  return false;
}

}  // namespace nz::shim
