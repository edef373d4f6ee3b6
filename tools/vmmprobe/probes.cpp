// probes.cpp: VMM call timings and the unmap-stall check.
#include "probes.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include <fmt/format.h>

namespace vmmprobe {

namespace {

using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Each check names the failing call and returns from run_probes' helpers.
#define VMMPROBE_CHECK(call)                                                         \
  do {                                                                               \
    CUresult r_ = (call);                                                            \
    if (r_ != CUDA_SUCCESS) {                                                        \
      error = fmt::format("{} failed: {}", #call, drv.describe(r_));                 \
      return false;                                                                  \
    }                                                                                \
  } while (0)

// Owners that release on every path (errors included).
struct PrimaryContext {
  Driver& drv;
  CUdevice dev;
  bool held = false;
  ~PrimaryContext() {
    if (held) drv.cuDevicePrimaryCtxRelease(dev);
  }
};
struct Handle {
  Driver& drv;
  CUmemGenericAllocationHandle h = 0;
  bool held = false;
  ~Handle() {
    if (held) drv.cuMemRelease(h);
  }
};
struct AddressRange {
  Driver& drv;
  CUdeviceptr va = 0;
  size_t size = 0;
  ~AddressRange() {
    if (size) drv.cuMemAddressFree(va, size);
  }
};
struct DeviceBuffer {
  Driver& drv;
  CUdeviceptr p = 0;
  ~DeviceBuffer() {
    if (p) drv.cuMemFree(p);
  }
};
struct Stream {
  Driver& drv;
  CUstream s = nullptr;
  ~Stream() {
    if (s) drv.cuStreamDestroy(s);
  }
};
struct Event {
  Driver& drv;
  CUevent e = nullptr;
  ~Event() {
    if (e) drv.cuEventDestroy(e);
  }
};

// Run lengths: 1, 2, 4, ... and max_pages itself.
std::vector<uint32_t> run_lengths(uint32_t max_pages) {
  std::vector<uint32_t> out;
  for (uint64_t p = 1; p <= max_pages; p *= 2) out.push_back(static_cast<uint32_t>(p));
  if (out.empty() || out.back() != max_pages) out.push_back(max_pages);
  return out;
}

bool time_runs(Driver& drv, const ProbeOptions& opts, CUdevice dev, ProbeReport& report, std::string& error) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = dev;
  size_t gran = 0;
  VMMPROBE_CHECK(drv.cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
  if (gran == 0) {
    error = "cuMemGetAllocationGranularity returned 0";
    return false;
  }
  report.granularity = gran;
  const size_t page = (std::max<uint64_t>(opts.page_bytes, 1) + gran - 1) / gran * gran;
  report.page_bytes = page;
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;

  // Does the driver map a slice of a larger handle (the runtime's staging
  // arena)? The H200's driver (580, CUDA 13) answers CUDA_ERROR_NOT_SUPPORTED
  // even at offset 0: then every run maps a handle of exactly its size.
  const size_t big = page * opts.max_pages;
  AddressRange va{drv};
  VMMPROBE_CHECK(drv.cuMemAddressReserve(&va.va, big, gran, 0, 0));
  va.size = big;
  if (opts.max_pages > 1) {
    Handle pool{drv};
    VMMPROBE_CHECK(drv.cuMemCreate(&pool.h, big, &prop, 0));
    pool.held = true;
    CUresult r = drv.cuMemMap(va.va, page, big - page, pool.h, 0);
    report.offsets_supported = r == CUDA_SUCCESS;
    if (r == CUDA_SUCCESS) VMMPROBE_CHECK(drv.cuMemUnmap(va.va, page));
  } else {
    report.offsets_supported = false;
  }

  // A run mapped from one handle per page (the runtime's granular arena):
  // is one cuMemUnmap over all of the mappings accepted, and does it unmap
  // them all (each page maps again)?
  {
    const uint32_t n = std::min<uint32_t>(16, opts.max_pages);
    std::vector<std::unique_ptr<Handle>> handles;  // Handle releases in its destructor: never copied
    for (uint32_t i = 0; i < n; ++i) {
      handles.push_back(std::unique_ptr<Handle>(new Handle{drv}));
      VMMPROBE_CHECK(drv.cuMemCreate(&handles.back()->h, page, &prop, 0));
      handles.back()->held = true;
    }
    PagesRun& pr = report.pages_run;
    pr.measured = true;
    pr.pages = n;
    auto t0 = Clock::now();
    for (uint32_t i = 0; i < n; ++i) VMMPROBE_CHECK(drv.cuMemMap(va.va + i * page, page, 0, handles[i]->h, 0));
    pr.map_total_us = us_since(t0);
    t0 = Clock::now();
    VMMPROBE_CHECK(drv.cuMemSetAccess(va.va, n * page, &access, 1));
    pr.set_access_us = us_since(t0);
    t0 = Clock::now();
    const CUresult across = drv.cuMemUnmap(va.va, n * page);
    pr.unmap_us = us_since(t0);
    if (across == CUDA_SUCCESS) {
      // Really all gone: each page maps again (then goes, one by one).
      bool all = true;
      for (uint32_t i = 0; i < n; ++i) all = drv.cuMemMap(va.va + i * page, page, 0, handles[i]->h, 0) == CUDA_SUCCESS && all;
      for (uint32_t i = 0; i < n; ++i) drv.cuMemUnmap(va.va + i * page, page);
      pr.unmap_across = all;
    } else {
      t0 = Clock::now();
      for (uint32_t i = 0; i < n; ++i) VMMPROBE_CHECK(drv.cuMemUnmap(va.va + i * page, page));
      pr.unmap_us = us_since(t0);
    }
  }

  for (uint32_t pages : run_lengths(opts.max_pages)) {
    const size_t bytes = page * pages;
    std::vector<double> create, release, map, set_access, unmap;
    for (uint32_t r = 0; r < opts.repeat; ++r) {
      Handle fresh{drv};
      auto t0 = Clock::now();
      VMMPROBE_CHECK(drv.cuMemCreate(&fresh.h, bytes, &prop, 0));
      fresh.held = true;
      create.push_back(us_since(t0));
      t0 = Clock::now();
      CUresult map_result = drv.cuMemMap(va.va, bytes, 0, fresh.h, 0);
      map.push_back(us_since(t0));
      VMMPROBE_CHECK(map_result);
      t0 = Clock::now();
      CUresult access_result = drv.cuMemSetAccess(va.va, bytes, &access, 1);
      set_access.push_back(us_since(t0));
      t0 = Clock::now();
      CUresult unmap_result = drv.cuMemUnmap(va.va, bytes);
      unmap.push_back(us_since(t0));
      VMMPROBE_CHECK(access_result);
      VMMPROBE_CHECK(unmap_result);
      t0 = Clock::now();
      VMMPROBE_CHECK(drv.cuMemRelease(fresh.h));
      fresh.held = false;
      release.push_back(us_since(t0));
    }
    const size_t offset = 0;
    report.runs.push_back(
        {pages, offset, median(create), median(release), median(map), median(set_access), median(unmap)});
  }
  return true;
}

// Does cuMemUnmap of unrelated memory wait for work queued on another stream?
bool probe_stall(Driver& drv, const ProbeOptions& opts, CUdevice dev, size_t gran, StallResult& out,
                 std::string& error) {
  const size_t bytes = static_cast<size_t>(opts.stall_mb) << 20;
  DeviceBuffer buf{drv};
  VMMPROBE_CHECK(drv.cuMemAlloc(&buf.p, bytes));
  Stream stream{drv};
  VMMPROBE_CHECK(drv.cuStreamCreate(&stream.s, CU_STREAM_NON_BLOCKING));
  Event done{drv};
  VMMPROBE_CHECK(drv.cuEventCreate(&done.e, CU_EVENT_DISABLE_TIMING));

  // Calibrate: how many memsets make about stall_ms of work.
  VMMPROBE_CHECK(drv.cuMemsetD32Async(buf.p, 0, bytes / 4, stream.s));  // warm-up
  VMMPROBE_CHECK(drv.cuStreamSynchronize(stream.s));
  auto t0 = Clock::now();
  VMMPROBE_CHECK(drv.cuMemsetD32Async(buf.p, 1, bytes / 4, stream.s));
  VMMPROBE_CHECK(drv.cuStreamSynchronize(stream.s));
  const double one_us = std::max(1.0, us_since(t0));
  const uint32_t count = static_cast<uint32_t>(std::clamp(opts.stall_ms * 1000.0 / one_us, 1.0, 10000.0));

  auto queue_work = [&]() -> bool {
    for (uint32_t i = 0; i < count; ++i) VMMPROBE_CHECK(drv.cuMemsetD32Async(buf.p, i, bytes / 4, stream.s));
    VMMPROBE_CHECK(drv.cuEventRecord(done.e, stream.s));
    return true;
  };
  t0 = Clock::now();
  if (!queue_work()) return false;
  VMMPROBE_CHECK(drv.cuEventSynchronize(done.e));
  out.work_ms = us_since(t0) / 1000.0;

  // Unrelated memory: one page, mapped and accessible before the work starts.
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = dev;
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  Handle page{drv};
  VMMPROBE_CHECK(drv.cuMemCreate(&page.h, gran, &prop, 0));
  page.held = true;
  AddressRange va{drv};
  VMMPROBE_CHECK(drv.cuMemAddressReserve(&va.va, gran, gran, 0, 0));
  va.size = gran;
  VMMPROBE_CHECK(drv.cuMemMap(va.va, gran, 0, page.h, 0));
  VMMPROBE_CHECK(drv.cuMemSetAccess(va.va, gran, &access, 1));
  // Baseline: the same unmap with the device idle, then map it back.
  t0 = Clock::now();
  VMMPROBE_CHECK(drv.cuMemUnmap(va.va, gran));
  out.idle_unmap_us = us_since(t0);
  VMMPROBE_CHECK(drv.cuMemMap(va.va, gran, 0, page.h, 0));
  VMMPROBE_CHECK(drv.cuMemSetAccess(va.va, gran, &access, 1));

  if (!queue_work()) return false;
  t0 = Clock::now();
  const CUresult unmap = drv.cuMemUnmap(va.va, gran);
  out.unmap_us = us_since(t0);
  const CUresult query = drv.cuEventQuery(done.e);
  VMMPROBE_CHECK(unmap);
  if (query != CUDA_SUCCESS && query != CUDA_ERROR_NOT_READY) VMMPROBE_CHECK(query);
  out.work_done_at_return = query == CUDA_SUCCESS;
  VMMPROBE_CHECK(drv.cuStreamSynchronize(stream.s));
  out.measured = true;
  return true;
}

}  // namespace

bool run_probes(Driver& drv, const ProbeOptions& opts, ProbeReport& report, std::string& error) {
  VMMPROBE_CHECK(drv.cuInit(0));
  CUdevice dev = 0;
  VMMPROBE_CHECK(drv.cuDeviceGet(&dev, opts.device));
  char name[256] = {};
  if (drv.cuDeviceGetName(name, sizeof name - 1, dev) == CUDA_SUCCESS) report.device_name = name;
  PrimaryContext ctx{drv, dev};
  CUcontext c = nullptr;
  VMMPROBE_CHECK(drv.cuDevicePrimaryCtxRetain(&c, dev));
  ctx.held = true;
  VMMPROBE_CHECK(drv.cuCtxSetCurrent(c));
  if (!time_runs(drv, opts, dev, report, error)) return false;
  if (opts.stall_mb > 0 && !probe_stall(drv, opts, dev, report.granularity, report.stall, error)) return false;
  VMMPROBE_CHECK(drv.cuCtxSynchronize());
  return true;
}

}  // namespace vmmprobe
