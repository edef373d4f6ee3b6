// hook_table.cpp: lookups over the hook list for the dlsym and cuGetProcAddress routes.
#include "hook_table.h"

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

#include "real_driver.h"

// Each wrapper is defined with its real signature in one wrap_*.cpp file; here
// only its address is needed, so it is declared with an opaque type.
extern "C" {
#define NZ_HOOK_DECL(id, exported, request, first, kind) [[gnu::visibility("hidden")]] void nzw_##id();
NZ_HOOK_LIST(NZ_HOOK_DECL)
#undef NZ_HOOK_DECL
}

namespace nz::shim {

bool g_counting = [] {
  const char* v = std::getenv("NZ_SHIM_COUNT");
  const char* dump = std::getenv("NEUZIP_HOOK_COUNTS");  // counts printed at exit (hook_counts.cpp)
  return (v && v[0] == '1') || (dump && dump[0] == '1');
}();
std::atomic<uint64_t> g_call_counts[kHookCount];
std::atomic<uint64_t> g_call_ns[kHookCount];

uint64_t hook_clock_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec) + 1;  // never 0
}

namespace {

const HookEntry kEntries[] = {
#define NZ_HOOK_ROW(id, exported, request, first, kind) \
  {Hook::id, exported, request, first, StreamKind::kind, reinterpret_cast<void*>(&nzw_##id)},
    NZ_HOOK_LIST(NZ_HOOK_ROW)
#undef NZ_HOOK_ROW
#define NZ_ALIAS_ROW(request, first, kind, id) \
  {Hook::id, nullptr, request, first, StreamKind::kind, reinterpret_cast<void*>(&nzw_##id)},
        NZ_PROC_ALIAS_LIST(NZ_ALIAS_ROW)
#undef NZ_ALIAS_ROW
};

// Real entry points, indexed by Hook; filled once when the driver is first needed.
std::atomic<void*> g_real[kHookCount];
std::once_flag g_real_once;
std::atomic<bool> g_real_loaded{false};

void load_real_entries() noexcept {
  if (loading_on_this_thread()) return;  // re-entered from libcuda's own loading
  try {
    std::call_once(g_real_once, [] {
      for (const HookEntry& e : kEntries) {
        if (!e.exported) continue;
        void* p = real_driver_symbol(e.exported);
        if (p) g_real[static_cast<size_t>(e.hook)].store(p, std::memory_order_release);
      }
      g_real_loaded.store(true, std::memory_order_release);
    });
  } catch (...) {
  }
}

}  // namespace

void* real_entry(Hook h) noexcept {
  void* p = g_real[static_cast<size_t>(h)].load(std::memory_order_relaxed);
  if (p) [[likely]]
    return p;
  if (!g_real_loaded.load(std::memory_order_acquire)) load_real_entries();
  return g_real[static_cast<size_t>(h)].load(std::memory_order_acquire);
}

const HookEntry* find_exported(const char* symbol) noexcept {
  for (const HookEntry& e : kEntries)
    if (e.exported && std::strcmp(e.exported, symbol) == 0) return &e;
  return nullptr;
}

void* substitute_proc(const char* request, int version, cuuint64_t flags, void* real_fn) noexcept {
  if (!request || !real_fn) return nullptr;
  if (!g_real_loaded.load(std::memory_order_acquire)) load_real_entries();

  // 1. The pointer the driver returned is one we know: its ABI is decided.
  for (const HookEntry& e : kEntries)
    if (e.exported && g_real[static_cast<size_t>(e.hook)].load(std::memory_order_acquire) == real_fn &&
        std::strcmp(e.request, request) == 0)
      return e.wrapper;

  // 2. Otherwise the newest variant not newer than `version`, of the stream flavour
  //    asked for; a per-thread request falls back to the legacy variant when the
  //    per-thread one does not exist for that version (as the driver does).
  const bool per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  auto best_of = [&](bool want_per_thread) -> const HookEntry* {
    const HookEntry* best = nullptr;
    for (const HookEntry& e : kEntries) {
      if (std::strcmp(e.request, request) != 0 || e.first_version > version) continue;
      const bool is_pt = e.kind == StreamKind::P;
      if (is_pt != want_per_thread) continue;
      if (!best || e.first_version > best->first_version) best = &e;
    }
    return best;
  };
  const HookEntry* chosen = per_thread ? best_of(true) : nullptr;
  if (!chosen) chosen = best_of(false);
  if (!chosen) return nullptr;

  // Forward to what the driver returned when dlsym could not find that variant.
  void* expected = nullptr;
  g_real[static_cast<size_t>(chosen->hook)].compare_exchange_strong(expected, real_fn,
                                                                   std::memory_order_acq_rel);
  return chosen->wrapper;
}

}  // namespace nz::shim

// Test introspection (exported): how often the wrapper exported as `symbol` was
// entered since start; counts only with NZ_SHIM_COUNT=1. Returns -1 when unknown.
extern "C" long long nz_shim_call_count(const char* symbol) {
  const nz::shim::HookEntry* e = symbol ? nz::shim::find_exported(symbol) : nullptr;
  if (!e) return -1;
  return static_cast<long long>(
      nz::shim::g_call_counts[static_cast<size_t>(e->hook)].load(std::memory_order_relaxed));
}
