#include "sim_va.h"

#include <sys/mman.h>

#include <deque>
#include <map>
#include <mutex>

#include "sim_internal.h"

namespace nzsim {
namespace {

constexpr size_t kRegionBytes = 2ull << 40;   // 2 TiB of address space
constexpr size_t kGuardBytes = 64u << 10;      // unused gap after every range
constexpr size_t kQuarantineBytes = 256ull << 30;
constexpr size_t kQuarantineRanges = 4096;

std::atomic<uintptr_t> g_base{0};
std::atomic<uintptr_t> g_end{0};

struct Allocator {
  std::mutex mu;
  std::map<uintptr_t, size_t> free_ranges;  // start -> size, coalesced
  std::deque<std::pair<uintptr_t, size_t>> quarantine;
  size_t quarantined_bytes = 0;

  void insert_free(uintptr_t a, size_t s) {
    auto next = free_ranges.lower_bound(a);
    if (next != free_ranges.end() && a + s == next->first) {
      s += next->second;
      next = free_ranges.erase(next);
    }
    if (next != free_ranges.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == a) {
        prev->second += s;
        return;
      }
    }
    free_ranges.emplace(a, s);
  }
};

Allocator& allocator() {
  static Allocator& a = *new Allocator;  // never destroyed: stream workers may free at process exit
  return a;
}

}  // namespace

bool va_init() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    // Less where the process's address space is smaller (a sanitizer's
    // layout, a ulimit -v): halved down to 64 GiB, still four simulated
    // devices' worth.
    size_t bytes = kRegionBytes;
    void* p = MAP_FAILED;
    for (; bytes >= (size_t{64} << 30); bytes /= 2) {
      p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p != MAP_FAILED) break;
    }
    if (p == MAP_FAILED) return;
    auto base = reinterpret_cast<uintptr_t>(p);
    // Device pointers on a GPU are at least 2 MiB aligned; keep that property.
    uintptr_t start = align_up(base, kGranularity);
    allocator().free_ranges.emplace(start, base + bytes - start);
    g_base.store(base);
    g_end.store(base + bytes);
    ok = true;
  });
  return ok;
}

bool va_contains(uintptr_t addr) noexcept {
  return addr >= g_base.load(std::memory_order_relaxed) && addr < g_end.load(std::memory_order_relaxed);
}

uintptr_t va_allocate(size_t size, size_t align) {
  if (size == 0 || !va_init()) return 0;
  Allocator& al = allocator();
  std::lock_guard lock(al.mu);
  size_t need = size + kGuardBytes;
  for (auto it = al.free_ranges.begin(); it != al.free_ranges.end(); ++it) {
    uintptr_t start = align_up(it->first, align);
    uintptr_t end = it->first + it->second;
    if (start + need > end) continue;
    uintptr_t block = it->first;
    al.free_ranges.erase(it);
    if (start > block) al.free_ranges.emplace(block, start - block);
    if (end > start + need) al.free_ranges.emplace(start + need, end - (start + need));
    return start;
  }
  return 0;
}

void va_make_inaccessible(uintptr_t addr, size_t size) {
  mmap(reinterpret_cast<void*>(addr), size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
       -1, 0);
}

void va_release(uintptr_t addr, size_t size) {
  va_make_inaccessible(addr, size);
  Allocator& al = allocator();
  std::lock_guard lock(al.mu);
  size_t whole = size + kGuardBytes;
  al.quarantine.emplace_back(addr, whole);
  al.quarantined_bytes += whole;
  while (al.quarantined_bytes > kQuarantineBytes || al.quarantine.size() > kQuarantineRanges) {
    auto [a, s] = al.quarantine.front();
    al.quarantine.pop_front();
    al.quarantined_bytes -= s;
    al.insert_free(a, s);
  }
}

}  // namespace nzsim
