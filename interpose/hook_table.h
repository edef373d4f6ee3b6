// hook_table.h: the hook list as data, plus the real entry point behind each hook.
#pragma once

#include <cuda.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "hook_list.h"

namespace nz::shim {

enum class Hook : uint16_t {
#define NZ_HOOK_ENUM(id, exported, request, first, kind) id,
  NZ_HOOK_LIST(NZ_HOOK_ENUM)
#undef NZ_HOOK_ENUM
      kCount
};
inline constexpr size_t kHookCount = static_cast<size_t>(Hook::kCount);

// Which per-thread-stream flavour an entry is (see hook_list.h).
enum class StreamKind : uint8_t { A, L, P };

struct HookEntry {
  Hook hook;
  const char* exported;  // null for request-only aliases
  const char* request;
  int first_version;
  StreamKind kind;
  void* wrapper;
};

// The wrapper that dlsym(libcuda, exported) must return, or null if not hooked.
const HookEntry* find_exported(const char* symbol) noexcept;

// The wrapper that cuGetProcAddress(request, version, flags) must return when
// the real driver returned `real_fn` for it, or null if not hooked. Also records
// real_fn as the forwarding target when dlsym could not resolve it.
void* substitute_proc(const char* request, int version, cuuint64_t flags, void* real_fn) noexcept;

// The real driver's entry point for `h` (null when the driver lacks it).
// Loads the driver on first use; afterwards one relaxed load.
void* real_entry(Hook h) noexcept;

// Test introspection: counting is enabled by NZ_SHIM_COUNT=1 in the environment
// (one predictable branch otherwise). With counting on, each hook also adds
// the wall time spent inside it (the runtime's work and the forwarded driver
// call together): NEUZIP_HOOK_COUNTS=1 prints both at exit, which is how a
// real program shows where its host time under neuzip went.
extern bool g_counting;
extern std::atomic<uint64_t> g_call_counts[kHookCount];
extern std::atomic<uint64_t> g_call_ns[kHookCount];

uint64_t hook_clock_ns() noexcept;

// Returned by count_call: adds the hook's time when it goes out of scope.
class [[nodiscard]] HookScope {
 public:
  explicit HookScope(Hook h) noexcept : hook_(h), start_(g_counting ? hook_clock_ns() : 0) {}
  ~HookScope() {
    if (start_ != 0) g_call_ns[static_cast<size_t>(hook_)].fetch_add(hook_clock_ns() - start_, std::memory_order_relaxed);
  }
  HookScope(const HookScope&) = delete;
  HookScope& operator=(const HookScope&) = delete;

 private:
  Hook hook_;
  uint64_t start_;
};

inline HookScope count_call(Hook h) noexcept {
  if (g_counting) g_call_counts[static_cast<size_t>(h)].fetch_add(1, std::memory_order_relaxed);
  return HookScope(h);
}

}  // namespace nz::shim

// In a wrapper body: the real entry point with the wrapper's own type.
#define NZ_REAL(id) \
  reinterpret_cast<decltype(&nzw_##id)>(::nz::shim::real_entry(::nz::shim::Hook::id))
#define NZ_ENTER(id) const ::nz::shim::HookScope nz_hook_scope = ::nz::shim::count_call(::nz::shim::Hook::id)
