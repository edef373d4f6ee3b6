// stats.h: the counters behind nz_stats, updated without locks.
#pragma once

#include <atomic>
#include <cstdint>

#include "neuzip/runtime.h"

namespace nz::rt {

struct Counter {
  std::atomic<uint64_t> value{0};
  void add(uint64_t n = 1) noexcept { value.fetch_add(n, std::memory_order_relaxed); }
  void sub(uint64_t n) noexcept { value.fetch_sub(n, std::memory_order_relaxed); }
  void set(uint64_t n) noexcept { value.store(n, std::memory_order_relaxed); }
  void raise_to(uint64_t n) noexcept {
    uint64_t cur = value.load(std::memory_order_relaxed);
    while (n > cur && !value.compare_exchange_weak(cur, n, std::memory_order_relaxed)) {
    }
  }
  uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

struct Stats {
  Counter bytes_tagged, bytes_compressible, bytes_original_compressed, bytes_compressed;
  Counter staging_bytes, staging_bytes_peak, staging_budget;
  Counter device_bytes_saved_peak;
  Counter faults, decompressions, recompressions, drops, prefetches, launches_seen, checksum_failures;
  Counter prefetch_hits;   // prefetched ranges that were then used
  Counter store_releases;  // stores given up while staged, under memory pressure
  Counter reencodes;       // unchanged ranges encoded again at eviction (their store was given up)
  Counter stores_restored; // unchanged ranges whose given-up store came back from a host copy instead
  Counter stores_offloaded;  // stores moved to host memory by a staging out of device memory (offload_stores)
  Counter stores_left_in_host;  // evictions short of memory that left a range's store in host memory
  Counter decodes_from_host_copies;  // ranges a staging past the budget decoded from their store's host copy
  Counter handoffs;        // units evicted by handing their pages over on the device (handoff.h)
  Counter rescues;         // of which found changed by the device's change test (restored from host memory)
  Counter encode_handoffs; // of which rewritten units encoded on the device (handoff_encode.cpp)
  Counter encode_rescues;  // of those, the ones whose encoding did not fit (restored from host memory)
  Counter encode_handoffs_held;  // of those, the ones that kept their pages until settled (Handoff::held)
  Counter parked;          // units evicted to host memory: no device memory to encode them (park)
  Counter evicted_ahead;   // runs the look-ahead stager evicted with the lock dropped (eviction_ahead.cpp)
  Counter encoded_ahead;   // of their units, those it encoded (changed, or a store given up)
  Counter evictions_deferred;  // of those runs, the ones a launching thread handed to it
  Counter released_bytes;  // physical bytes of pages released for compressed ranges (now)
  Counter device_used_peak; // highest cuMemGetInfo "used" the runtime sampled
  Counter vmm_calls;        // our cuMemCreate/cuMemMap/cuMemSetAccess/cuMemUnmap calls
  Counter decode_launches, bytes_decompressed;
  Counter hook_host_ns;     // host time in hooks that touched tracked memory
  Counter hook_wait_ns;     // of which waiting for the device (evictions under a fixed budget)
  Counter stalled_waits;    // evictions that gave up waiting for a run's uses (NEUZIP_WAIT_PATIENCE_MS)
  // Also of hook_host_ns (the launching threads' hook time, broken down for
  // the report): waiting for the runtime lock in prepare(), waiting for the
  // look-ahead stager to finish units a call needs, and encodes.
  Counter hook_lock_ns, hook_stager_ns, hook_encode_ns;
  // With NEUZIP_REPORT=1: the launching threads' CPU time in those hooks
  // (the thread's CPU clock). On the simulator, whose device runs on the same
  // cores, wall time in hooks also counts time the thread was not running.
  Counter hook_cpu_ns;
  Counter stagings_on_launch;  // units staged by a launching thread for its own call
  // Every encode (first compression, recompression of a changed range,
  // re-encode of an unchanged one whose store was given up): the work that
  // rewritten weights and idle optimizer state cost per step.
  Counter encodes, bytes_encoded, encode_ns;
  void encoded(uint64_t bytes, uint64_t ns) noexcept {
    encodes.add();
    bytes_encoded.add(bytes);
    encode_ns.add(ns);
  }

  // released - store - staging, clamped at 0, and its peak updated.
  uint64_t device_bytes_saved() noexcept;
  void fill(nz_runtime_stats& out) noexcept;
};

}  // namespace nz::rt
