// Configuration from the environment, statistics, and the stub reporter.
#include <execinfo.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "sim_internal.h"

namespace nzsim {
namespace {

Config read_config() {
  Config c;
  if (const char* mb = std::getenv("NZSIM_MEMORY_MB"); mb && *mb) {
    uint64_t v = std::strtoull(mb, nullptr, 10);
    if (v > 0) c.total_bytes = v << 20;
  }
  if (const char* lazy = std::getenv("NZSIM_LAZY")) c.lazy = std::strcmp(lazy, "0") != 0 && *lazy;
  if (const char* depth = std::getenv("NZSIM_LAZY_DEPTH"); depth && *depth) {
    uint64_t v = std::strtoull(depth, nullptr, 10);
    if (v > 0) c.lazy_queue_limit = v;
  }
  if (const char* log = std::getenv("NZSIM_LOG")) c.log = std::strcmp(log, "0") != 0 && *log;
  if (const char* off = std::getenv("NZSIM_MAP_OFFSETS")) c.map_offsets = std::strcmp(off, "0") != 0;
  if (const char* across = std::getenv("NZSIM_UNMAP_ACROSS")) c.unmap_across = std::strcmp(across, "0") != 0;
  if (const char* n = std::getenv("NZSIM_DEVICES")) {
    const long v = std::strtol(n, nullptr, 10);
    if (v >= 1 && v <= static_cast<long>(kMaxDevices)) c.devices = static_cast<unsigned>(v);
  }
  if (const char* t = std::getenv("NZSIM_PEAK_TRACE"); t && *t) c.peak_trace_above = std::strtoull(t, nullptr, 10);
  return c;
}

std::atomic<uint64_t> g_physical{0};
std::atomic<uint64_t> g_peak{0};
std::atomic<uint64_t> g_faults{0};
std::atomic<uint64_t> g_launches{0};

}  // namespace

const Config& config() {
  static const Config c = read_config();
  return c;
}

bool try_reserve_physical(uint64_t bytes) {
  uint64_t cur = g_physical.load();
  do {
    if (cur + bytes > config().total_bytes) return false;
  } while (!g_physical.compare_exchange_weak(cur, cur + bytes));
  uint64_t now = cur + bytes;
  uint64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {}
  // Who raised the peak: the reservation's call stack (addresses in
  // libraries without symbols: addr2line -f -C -e LIB +OFFSET).
  const uint64_t trace_above = config().peak_trace_above;
  if (trace_above != 0 && now > trace_above && now > peak) {
    void* frames[48];
    const int n = backtrace(frames, 48);
    std::fprintf(stderr, "nzsim-new-peak %llu (+%llu)\n", static_cast<unsigned long long>(now),
                 static_cast<unsigned long long>(bytes));
    backtrace_symbols_fd(frames, n, 2);
  }
  return true;
}

void release_physical(uint64_t bytes) { g_physical.fetch_sub(bytes); }
uint64_t physical_in_use() { return g_physical.load(); }
void count_fault() { g_faults.fetch_add(1); }
void count_launch() { g_launches.fetch_add(1, std::memory_order_relaxed); }

// Called by the generated stubs of entry points the simulator does not implement.
void report_unsupported(const char* name, bool* once) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  if (*once) return;
  *once = true;
  log_error("{} not supported", name);
}

}  // namespace nzsim

extern "C" {

__attribute__((visibility("default"))) int nzsim_get_stats(nzsim_stats* out) {
  if (!out) return 1;
  out->total_bytes = nzsim::config().total_bytes;
  out->physical_bytes = nzsim::g_physical.load();
  out->peak_physical_bytes = nzsim::g_peak.load();
  out->faults = nzsim::g_faults.load();
  out->launches = nzsim::g_launches.load();
  return 0;
}

__attribute__((visibility("default"))) void nzsim_reset_peak(void) {
  nzsim::g_peak.store(nzsim::g_physical.load());
}

}  // extern "C"
