// launch_path_probe.cpp: two questions the staging path's next design rests
// on (docs/RESULTS.md §6.5, §7):
//  * can one cuMemSetAccess and one cuMemUnmap cover a run made of several
//    whole mappings (2 MiB handles mapped side by side)? Then a run could be
//    assembled from page handles created ahead, with no cuMemCreate on the
//    launch path and one unmap per run;
//  * does the access cuMemSetAccess granted survive cuMemUnmap and a new
//    cuMemMap at the same addresses? Set-access is the largest per-run cost
//    on the H200 (~50 us, §6.3): if it survives, a weight's addresses would
//    pay it once, not at every staging. Asked with cuMemGetAccess, and only
//    if that says read/write, confirmed by a write (last: if the driver
//    answered wrongly, the fault ends this process after its answers);
//  * what the driver calls the runtime makes on every launch that touches a
//    staged weight cost: cuEventRecord, cuEventQuery, cuStreamIsCapturing,
//    cuThreadExchangeStreamCaptureMode, cuStreamWaitEvent (mean of many calls).
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "probes.h"

namespace driverprobe {
namespace {

constexpr int kPages = 4;
constexpr int kCalls = 2000;

template <typename F>
double mean_ns(F&& call) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) call();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kCalls;
}

std::string spanning_mappings(const Driver& drv, const Device& dev) {
  const size_t page = dev.granularity;
  const CUmemAllocationProp prop = device_allocation_prop(dev);
  const CUmemAccessDesc access = read_write_access(dev);
  CUdeviceptr va = 0;
  if (CUresult r = drv.cuMemAddressReserve(&va, kPages * page, page, 0, 0); r != CUDA_SUCCESS)
    return fmt::format("{{\"error\": \"cuMemAddressReserve: {}\"}}", drv.name(r));
  std::vector<CUmemGenericAllocationHandle> handles(kPages, 0);
  std::string error;
  int mapped = 0;
  for (int i = 0; i < kPages && error.empty(); ++i) {
    if (CUresult r = drv.cuMemCreate(&handles[i], page, &prop, 0); r != CUDA_SUCCESS) {
      error = "cuMemCreate: " + drv.name(r);
    } else if (CUresult r2 = drv.cuMemMap(va + i * page, page, 0, handles[i], 0); r2 != CUDA_SUCCESS) {
      error = "cuMemMap: " + drv.name(r2);
    } else {
      ++mapped;
    }
  }
  std::string access_result = "not tried", unmap_result = "not tried";
  uint32_t last = 0;
  if (error.empty()) {
    CUresult r = drv.cuMemSetAccess(va, kPages * page, &access, 1);
    access_result = drv.name(r);
    if (r == CUDA_SUCCESS && drv.cuMemsetD32(va, 0x5A5A5A5Au, kPages * page / 4) == CUDA_SUCCESS)
      drv.cuMemcpyDtoH(&last, va + kPages * page - 4, 4);
    const CUresult u = drv.cuMemUnmap(va, kPages * page);
    unmap_result = drv.name(u);
    if (u == CUDA_SUCCESS) mapped = 0;
  }
  for (int i = 0; i < mapped; ++i) drv.cuMemUnmap(va + i * page, page);
  for (auto h : handles)
    if (h) drv.cuMemRelease(h);
  drv.cuMemAddressFree(va, kPages * page);
  std::string s = fmt::format(
      "{{\"pages\": {}, \"set_access_over_all\": \"{}\", \"written_through_all\": {}, \"unmap_over_all\": \"{}\"",
      kPages, access_result, last == 0x5A5A5A5Au ? "true" : "false", unmap_result);
  if (!error.empty()) s += fmt::format(", \"error\": \"{}\"", error);
  return s + "}";
}

std::string call_costs(const Driver& drv) {
  if (!drv.cuStreamCreate || !drv.cuEventCreate || !drv.cuEventRecord || !drv.cuEventQuery)
    return "{\"error\": \"the driver lacks stream or event entry points\"}";
  CUstream stream = nullptr;
  CUevent event = nullptr;
  if (CUresult r = drv.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING); r != CUDA_SUCCESS)
    return fmt::format("{{\"error\": \"cuStreamCreate: {}\"}}", drv.name(r));
  if (CUresult r = drv.cuEventCreate(&event, CU_EVENT_DISABLE_TIMING); r != CUDA_SUCCESS) {
    drv.cuStreamDestroy(stream);
    return fmt::format("{{\"error\": \"cuEventCreate: {}\"}}", drv.name(r));
  }
  const double record = mean_ns([&] { drv.cuEventRecord(event, stream); });
  drv.cuStreamSynchronize(stream);
  const double query = mean_ns([&] { drv.cuEventQuery(event); });
  CUstreamCaptureStatus status;
  const double capturing =
      drv.cuStreamIsCapturing ? mean_ns([&] { drv.cuStreamIsCapturing(stream, &status); }) : -1;
  const double mode = drv.cuThreadExchangeStreamCaptureMode ? mean_ns([&] {
    CUstreamCaptureMode m = CU_STREAM_CAPTURE_MODE_RELAXED;
    drv.cuThreadExchangeStreamCaptureMode(&m);
    drv.cuThreadExchangeStreamCaptureMode(&m);
  }) : -1;
  const double wait = drv.cuStreamWaitEvent ? mean_ns([&] { drv.cuStreamWaitEvent(stream, event, 0); }) : -1;
  drv.cuStreamSynchronize(stream);
  drv.cuEventDestroy(event);
  drv.cuStreamDestroy(stream);
  return fmt::format(
      "{{\"calls\": {}, \"event_record_ns\": {:.0f}, \"event_query_done_ns\": {:.0f}, \"stream_is_capturing_ns\": "
      "{:.0f}, \"capture_mode_enter_and_leave_ns\": {:.0f}, \"stream_wait_event_ns\": {:.0f}}}",
      kCalls, record, query, capturing, mode, wait);
}

std::string access_after_remap(const Driver& drv, const Device& dev) {
  if (!drv.cuMemGetAccess) return "{\"error\": \"the driver lacks cuMemGetAccess\"}";
  const size_t page = dev.granularity;
  const CUmemAllocationProp prop = device_allocation_prop(dev);
  const CUmemAccessDesc access = read_write_access(dev);
  CUdeviceptr va = 0;
  if (CUresult r = drv.cuMemAddressReserve(&va, page, page, 0, 0); r != CUDA_SUCCESS)
    return fmt::format("{{\"error\": \"cuMemAddressReserve: {}\"}}", drv.name(r));
  CUmemGenericAllocationHandle h = 0;
  std::string steps;
  unsigned long long before = 0, after = 0;
  CUresult got = CUDA_ERROR_UNKNOWN, wrote = CUDA_ERROR_NOT_PERMITTED;
  bool mapped = false;
  uint32_t value = 0;
  if (CUresult r = drv.cuMemCreate(&h, page, &prop, 0); r != CUDA_SUCCESS) {
    steps = "cuMemCreate: " + drv.name(r);
  } else if (CUresult r1 = drv.cuMemMap(va, page, 0, h, 0); r1 != CUDA_SUCCESS) {
    steps = "cuMemMap: " + drv.name(r1);
  } else if (CUresult r2 = drv.cuMemSetAccess(va, page, &access, 1); r2 != CUDA_SUCCESS) {
    mapped = true;
    steps = "cuMemSetAccess: " + drv.name(r2);
  } else {
    drv.cuMemGetAccess(&before, &access.location, va);
    drv.cuMemUnmap(va, page);
    if (CUresult r3 = drv.cuMemMap(va, page, 0, h, 0); r3 != CUDA_SUCCESS) {
      steps = "second cuMemMap: " + drv.name(r3);
    } else {
      mapped = true;
      got = drv.cuMemGetAccess(&after, &access.location, va);
      if (got == CUDA_SUCCESS && after == CU_MEM_ACCESS_FLAGS_PROT_READWRITE) {
        wrote = drv.cuMemsetD32(va, 0x5A5A5A5Au, page / 4);
        if (wrote == CUDA_SUCCESS) wrote = drv.cuMemcpyDtoH(&value, va + page - 4, 4);
      }
    }
  }
  if (mapped && (wrote == CUDA_SUCCESS || wrote == CUDA_ERROR_NOT_PERMITTED)) drv.cuMemUnmap(va, page);
  if (h) drv.cuMemRelease(h);
  drv.cuMemAddressFree(va, page);
  std::string s = fmt::format(
      "{{\"access_before_unmap\": {}, \"get_access_after_remap\": \"{}\", \"access_after_remap\": {}, "
      "\"write_after_remap\": \"{}\", \"survives_remap\": {}",
      before, drv.name(got), after, wrote == CUDA_ERROR_NOT_PERMITTED ? "not tried" : drv.name(wrote),
      wrote == CUDA_SUCCESS && value == 0x5A5A5A5Au ? "true" : "false");
  if (!steps.empty()) s += fmt::format(", \"error\": \"{}\"", steps);
  return s + "}";
}

}  // namespace

std::string probe_launch_path(const Driver& drv, const Device& dev) {
  if (!drv.cuMemCreate || !drv.cuMemMap || !drv.cuMemUnmap || !drv.cuMemSetAccess)
    return "{\"error\": \"the driver lacks the VMM entry points\"}";
  const std::string spanning = spanning_mappings(drv, dev);
  const std::string costs = call_costs(drv);
  return fmt::format("{{\"spanning_mappings\": {}, \"call_costs\": {}, \"access_after_remap\": {}}}", spanning,
                     costs, access_after_remap(drv, dev));
}

}  // namespace driverprobe
