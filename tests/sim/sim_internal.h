// Shared internals of the simulated CUDA driver: configuration, statistics,
// logging and the small helpers every API file uses.
#pragma once

#include <cuda.h>

#include <atomic>
#include <cstdint>
#include <string_view>

#include <fmt/core.h>

#include "nzsim.h"

namespace nzsim {

struct Config {
  uint64_t total_bytes = 16384ull << 20;  // NZSIM_MEMORY_MB
  bool lazy = false;                       // NZSIM_LAZY=1
  size_t lazy_queue_limit = 1024;          // NZSIM_LAZY_DEPTH: lazy queues flush beyond this
  bool log = false;                        // NZSIM_LOG=1: trace notable events to stderr
  bool map_offsets = false;                // NZSIM_MAP_OFFSETS=1: cuMemMap of a slice of a handle works
  bool unmap_across = true;                // NZSIM_UNMAP_ACROSS=0: cuMemUnmap of several mappings at once fails
  uint64_t peak_trace_above = 0;           // NZSIM_PEAK_TRACE=BYTES: a backtrace at each new peak above
  unsigned devices = 1;                    // NZSIM_DEVICES (1-8): devices sharing the one memory pool
};

// Read once from the environment (first use).
const Config& config();

constexpr unsigned kMaxDevices = 8;
inline bool valid_device(CUdevice d) { return d >= 0 && static_cast<unsigned>(d) < config().devices; }

// True once cuInit has succeeded.
bool initialized();

// Device memory accounting. Physical bytes are cuMemAlloc'd and cuMemCreate'd
// bytes; reservations of physical memory fail once they would exceed
// Config::total_bytes.
bool try_reserve_physical(uint64_t bytes);
void release_physical(uint64_t bytes);
uint64_t physical_in_use();
void count_fault();
void count_launch();

constexpr size_t kGranularity = 2u << 20;  // VMM granularity (cuMemGetAllocationGranularity)
constexpr size_t kPageSize = 4096;

inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

template <typename... Args>
void log_error(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "nzsim: {}\n", fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... args) {
  if (config().log) log_error(f, std::forward<Args>(args)...);
}

}  // namespace nzsim

// Every entry point except the few that work before cuInit starts with this.
#define NZ_REQUIRE_INIT() \
  do { if (!::nzsim::initialized()) return CUDA_ERROR_NOT_INITIALIZED; } while (0)
