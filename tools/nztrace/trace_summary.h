// trace_summary.h: what a trace says about one run: device memory saved over
// time, each compressed buffer's life, and what the compression cost.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "trace_events.h"

namespace nztrace {

// One compression unit of the runtime (a tagged, page-aligned piece of an
// allocation; a small tensor is one unit, a large one several).
struct BufferStats {
  uint64_t address = 0;
  uint64_t bytes = 0;
  uint64_t allocation = 0;       // base of the allocation holding it (0 = unknown)
  int64_t dtype = -1;            // NZ_TAG_* of the tag covering it, -1 = unknown
  uint64_t compressed_bytes = 0;  // latest compressed size (0 = never compressed)
  uint32_t compressions = 0;      // first compressions (compress events)
  uint32_t stages = 0;            // decompressions into staging memory (stage events, prefetches included)
  uint32_t prefetches = 0;        // of which started ahead of use
  uint32_t recompressions = 0;    // changed content encoded again at eviction
  uint32_t reencodes = 0;         // unchanged content encoded again (its store was given up)
  uint32_t store_releases = 0;    // stores given up while staged, under memory pressure
  uint32_t parks = 0;             // evicted to host memory: no device memory to encode it (park)
  uint32_t drops = 0;             // unchanged content evicted without re-encoding
  std::string kept_resident;      // reason the runtime gave ("ratio", "memory", ...) or ""
  bool made_resident = false;     // the runtime gave up compressing it (resident event)
  bool freed = false;             // its allocation was freed
  std::optional<uint64_t> site;   // where its allocation was made (TraceSummary::sites), when traced
  double ratio() const { return compressed_bytes && bytes ? static_cast<double>(compressed_bytes) / bytes : 0.0; }
};

struct FootprintSample {
  uint64_t t_ns = 0;   // since the first event
  uint64_t saved = 0;  // released - store - staging, clamped at 0 (the runtime's own definition)
  uint64_t used = 0;   // device bytes in use (cuMemGetInfo)
  uint64_t store = 0;  // compressed data on the device
  uint64_t staging = 0;  // staging pool (physical)
};

// Where allocations were made (the runtime's "site" lines): symbolised native
// frames and Python file:line frames, innermost first.
struct AllocSite {
  std::vector<std::string> native, python;
};

// Staging work of one iteration: the difference between two consecutive
// "counters" lines (the later minus the earlier, each member at least 0).
struct IterationCounters {
  uint64_t iteration = 0;    // the earlier line's "iteration": the one that ran between the two
  uint64_t t_ns = 0;         // the earlier line's time, since the first event
  uint64_t duration_ns = 0;  // to the later line
  CounterValues delta;
};

// Per-iteration means of the steady state (TraceSummary::steady_state).
struct SteadyState {
  size_t iterations = 0;  // how many iterations the means are over
  double vmm_calls = 0, decode_launches = 0, bytes_decompressed = 0, hook_host_ns = 0, hook_wait_ns = 0;
  std::optional<double> lookahead_hit_rate;  // over those iterations' stagings
};

// stagings_ahead / (stagings_ahead + stagings_on_launch); nullopt when both are 0.
std::optional<double> lookahead_hit_rate(const CounterValues& c);

struct TraceSummary {
  std::optional<uint64_t> pid, rank;  // the writing process and its rank (counters lines of newer runtimes)
  uint64_t events = 0;
  uint64_t malformed_lines = 0;
  uint64_t duration_ns = 0;
  std::map<std::string, uint64_t> event_counts;

  uint64_t allocations = 0;
  uint64_t allocated_bytes_peak = 0;  // live bytes of the allocations the runtime manages
  uint64_t used_peak = 0;             // device bytes in use, peak
  uint64_t store_peak = 0;            // compressed data on the device, peak
  uint64_t staging_peak = 0;          // staging pool, peak

  uint64_t saved_peak = 0;
  uint64_t saved_final = 0;    // after the last event (usually 0: frees at exit)
  double saved_mean = 0;       // time-weighted over the run
  uint64_t used_at_saved_peak = 0;

  uint64_t compressed_original_bytes = 0;  // sum of unit bytes at their first compression
  uint64_t compressed_bytes = 0;           // their compressed sizes

  uint64_t faults = 0;  // launches or copies that had to wait for a decompression
  std::map<std::string, uint64_t> fault_apis;
  uint64_t stages = 0, prefetches = 0, compressions = 0, recompressions = 0, reencodes = 0, drops = 0;
  uint64_t store_releases = 0;
  // Of the stores given up, those that came back from their host copy at
  // the eviction instead of being encoded again (store_restore).
  uint64_t store_restores = 0;
  // Units parked in host memory (no device memory to encode them at their
  // eviction; restored at their next staging): count, bytes, and the most
  // bytes parked at once. Their pages count as released: host offload.
  uint64_t parks = 0, bytes_parked = 0, parked_peak_bytes = 0;
  uint64_t bytes_decompressed = 0, bytes_recompressed = 0, bytes_reencoded = 0;
  uint64_t kept_resident = 0, made_resident = 0, oom_events = 0;
  // Allocations shared with other processes by CUDA IPC ("share" events): out
  // of compression for good from then on.
  uint64_t shared_allocations = 0, shared_bytes = 0;
  // Allocations exported as dma-bufs for a NIC or storage driver ("dmabuf"
  // events): out of compression for good too.
  uint64_t dmabuf_allocations = 0, dmabuf_bytes = 0;
  // Evictions that gave up waiting for a stream blocked on later work
  // ("stalled" events, NEUZIP_WAIT_PATIENCE_MS): staged over the budget.
  uint64_t stalled_waits = 0;
  // Host wall time the runtime spent, from the events' "ns" (docs/NZTRACE.md):
  // staging (page mapping + decode launch) and encoding (compress, recompress,
  // reencode). Traces of older runtimes have no "ns": has_codec_time false.
  bool has_codec_time = false;
  uint64_t stage_ns = 0, encode_ns = 0;
  uint64_t codec_ns() const { return stage_ns + encode_ns; }

  // The runtime's staging-work counters ("counters" lines, newer runtimes):
  // the last line's cumulative values (nullopt: the trace has none) and the
  // differences between consecutive lines, in file order.
  uint64_t counters_events = 0;
  std::optional<CounterValues> counters;
  std::optional<uint64_t> counters_iteration;  // the last line's "iteration"
  std::vector<IterationCounters> per_iteration;
  // The mean of per_iteration without its first entry (the steady state after
  // warm-up); nullopt with fewer than 3 counters lines.
  std::optional<SteadyState> steady_state() const;

  // Memory the runtime passes through and never compresses ("unserved"
  // events: its notice): by kind (program_vmm, stream_ordered), the peak
  // held (the later counters lines' figure; at least the bytes held when it
  // was said; 0: PyTorch's settings asked for it and nothing was held).
  std::map<std::string, uint64_t> unserved;

  std::map<uint64_t, AllocSite> sites;    // by id
  std::vector<BufferStats> buffers;       // ordered by address, then by first appearance
  std::vector<FootprintSample> timeline;  // one sample per footprint-carrying event
};

TraceSummary summarize(const TraceFile& trace);

// At most `points` samples of the timeline, each the maximum saved within its
// slice of the run (so a short peak is never averaged away).
std::vector<FootprintSample> downsample(const std::vector<FootprintSample>& timeline, uint64_t duration_ns,
                                        size_t points);

const char* dtype_name(int64_t dtype);

}  // namespace nztrace
