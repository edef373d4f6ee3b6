// probes.h: the measurements vmmprobe makes on the current device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "driver_loader.h"

namespace vmmprobe {

struct ProbeOptions {
  int device = 0;
  uint32_t max_pages = 512;  // largest run, in pages of `page_bytes`
  uint64_t page_bytes = 2u << 20;  // rounded up to the allocation granularity
  uint32_t repeat = 5;       // timings are the median of this many calls
  uint64_t stall_mb = 1024;  // size of the buffer the long-running stream work writes
  uint32_t stall_ms = 200;   // target duration of that work
};

// Median microseconds per call for a run of `pages` pages.
struct RunTiming {
  uint32_t pages = 0;
  uint64_t offset_bytes = 0;  // where in the large handle the run was mapped from
  double create_us = 0;       // cuMemCreate of a fresh handle of this size
  double release_us = 0;      // cuMemRelease of that fresh (never mapped) handle
  double map_us = 0;          // cuMemMap from the one large handle, at offset_bytes
  double set_access_us = 0;   // cuMemSetAccess of the mapped run
  double unmap_us = 0;        // cuMemUnmap of the run
};

struct StallResult {
  bool measured = false;
  double work_ms = 0;            // the stream work alone, host-timed to completion
  double idle_unmap_us = 0;      // the same cuMemUnmap with no work queued (baseline)
  double unmap_us = 0;           // cuMemUnmap of unrelated memory while that work runs
  bool work_done_at_return = false;  // the work's event was complete when cuMemUnmap returned
};

// A run of page handles mapped end to end (NEUZIP_STAGING_HANDLES=pages):
// whether one cuMemUnmap takes down all of them, and what the run costs.
struct PagesRun {
  bool measured = false;
  uint32_t pages = 0;
  bool unmap_across = false;     // one cuMemUnmap over every mapping succeeded and unmapped them all
  double map_total_us = 0;       // the run's cuMemMap calls, one per page, together
  double set_access_us = 0;      // one cuMemSetAccess over the run
  double unmap_us = 0;           // the one cuMemUnmap (or, refused, the per-page calls together)
};

struct ProbeReport {
  std::string device_name;
  uint64_t granularity = 0;
  uint64_t page_bytes = 0;       // the page of the runs (a multiple of granularity)
  bool offsets_supported = false;  // whether the driver maps a slice of a larger handle (runs always map exact handles)
  std::vector<RunTiming> runs;
  PagesRun pages_run;
  StallResult stall;
};


// False with `error` on any driver failure (the message names the call).
bool run_probes(Driver& drv, const ProbeOptions& opts, ProbeReport& report, std::string& error);

}  // namespace vmmprobe
