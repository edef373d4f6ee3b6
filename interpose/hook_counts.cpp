// hook_counts.cpp: NEUZIP_HOOK_COUNTS=1 prints, when the process exits, how
// often each hooked driver entry point was entered: proof, on a real program
// (PyTorch, cuBLAS), that the hooks saw its launches, copies and allocations.
//
// The counters are hook_table's (count_call: one relaxed increment, and only
// when counting is on); hook_table.cpp turns counting on for this variable
// too. Lines go to stderr, one per entry point entered:
//   neuzip: hook counts (pid P): N entry points entered, C calls
//   neuzip: hook count cuLaunchKernel 1234
//   neuzip: hook time cuLaunchKernel 56.7 ms (46 ns per call)
// The time is wall time inside the hook: the runtime's work, its waits and the
// forwarded driver call together (a plain run's driver call is the baseline).
#include <cstdlib>

#include <unistd.h>

#include "hook_table.h"
#include "shim_log.h"

namespace nz::shim {
namespace {

// The exported name of each hook, indexed like Hook.
constexpr const char* kExportedNames[] = {
#define NZ_HOOK_NAME(id, exported, request, first, kind) exported,
    NZ_HOOK_LIST(NZ_HOOK_NAME)
#undef NZ_HOOK_NAME
};
static_assert(sizeof(kExportedNames) / sizeof(kExportedNames[0]) == kHookCount);

bool dump_requested() noexcept {
  const char* v = std::getenv("NEUZIP_HOOK_COUNTS");
  return v && v[0] == '1';
}

void dump_counts() noexcept {
  uint64_t total = 0;
  size_t entered = 0;
  for (size_t i = 0; i < kHookCount; ++i) {
    const uint64_t n = g_call_counts[i].load(std::memory_order_relaxed);
    total += n;
    entered += n != 0;
  }
  log_line("hook counts (pid {}): {} entry points entered, {} calls", static_cast<long>(getpid()), entered,
           total);
  for (size_t i = 0; i < kHookCount; ++i) {
    const uint64_t n = g_call_counts[i].load(std::memory_order_relaxed);
    if (n != 0) log_line("hook count {} {}", kExportedNames[i], n);
  }
  for (size_t i = 0; i < kHookCount; ++i) {
    const uint64_t n = g_call_counts[i].load(std::memory_order_relaxed);
    const uint64_t ns = g_call_ns[i].load(std::memory_order_relaxed);
    if (n != 0) log_line("hook time {} {:.1f} ms ({} ns per call)", kExportedNames[i], ns / 1e6, ns / n);
  }
}

// A static whose destructor runs at exit (and at dlclose, which -z nodelete
// prevents): the counters are plain atomics, still valid then.
// Not in a child forked after start: the counts are the parent's.
struct DumpAtExit {
  bool armed = dump_requested();
  pid_t pid = getpid();
  ~DumpAtExit() {
    if (armed && getpid() == pid) dump_counts();
  }
} g_dump_at_exit;

}  // namespace
}  // namespace nz::shim
