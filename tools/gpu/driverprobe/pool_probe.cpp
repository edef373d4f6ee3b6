// pool_probe.cpp: when memory freed with cuMemFreeAsync is there again for
// cuMemCreate and cuMemAlloc (docs/RESULTS.md §4.9.7, §4.9.8). The runtime
// allocates its stores from the stream-ordered pool and frees them on its own
// streams; the documented default (release threshold 0) keeps freed blocks in
// the pool "until the next stream, event or context synchronize". Which of
// these give the memory back, as cuMemGetInfo sees it:
//  * the stream reached the free (asked with cuEventQuery: no synchronization);
//  * a synchronization of another stream with nothing queued (what
//    free_store_now does after freeing on its own idle stream);
//  * a synchronization of the stream that freed it;
//  * a context synchronization.
// And the cost of free_store_now's two calls on an idle stream.
#include <fmt/format.h>

#include <chrono>
#include <vector>

#include "probes.h"

namespace driverprobe {
namespace {

constexpr size_t kBytes = size_t{64} << 20;
constexpr size_t kStoreBytes = size_t{3} << 19;  // about one 2 MiB unit's store (1.5 MiB)
constexpr int kStores = 64;

long long free_bytes(const Driver& drv) {
  size_t free = 0, total = 0;
  if (drv.cuMemGetInfo(&free, &total) != CUDA_SUCCESS) return -1;
  return static_cast<long long>(free);
}

}  // namespace

std::string probe_stream_ordered_pool(const Driver& drv, const Device&) {
  if (!drv.cuMemAllocAsync || !drv.cuMemFreeAsync || !drv.cuMemGetInfo || !drv.cuStreamCreate ||
      !drv.cuStreamSynchronize || !drv.cuEventCreate || !drv.cuEventRecord || !drv.cuEventQuery ||
      !drv.cuCtxSynchronize)
    return fmt::format("{{\"skipped\": \"entry points missing: {}\"}}", drv.missing());
  CUstream owner = nullptr, idle = nullptr;
  CUevent reached = nullptr;
  if (drv.cuStreamCreate(&owner, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS ||
      drv.cuStreamCreate(&idle, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS ||
      drv.cuEventCreate(&reached, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS)
    return "{\"error\": \"cannot create the streams or the event\"}";
  auto cleanup = [&] {
    if (drv.cuEventDestroy) drv.cuEventDestroy(reached);
    if (drv.cuStreamDestroy) {
      drv.cuStreamDestroy(owner);
      drv.cuStreamDestroy(idle);
    }
  };
  drv.cuCtxSynchronize();  // start from an empty pool
  const long long before = free_bytes(drv);
  CUdeviceptr p = 0;
  if (CUresult r = drv.cuMemAllocAsync(&p, kBytes, owner); r != CUDA_SUCCESS) {
    cleanup();
    return fmt::format("{{\"error\": \"cuMemAllocAsync: {}\"}}", drv.name(r));
  }
  drv.cuStreamSynchronize(owner);
  const long long allocated = free_bytes(drv);
  drv.cuMemFreeAsync(p, owner);
  drv.cuEventRecord(reached, owner);
  CUresult q = CUDA_ERROR_NOT_READY;
  for (int i = 0; i < 10'000'000 && (q = drv.cuEventQuery(reached)) == CUDA_ERROR_NOT_READY; ++i) {
  }
  const long long reached_free = free_bytes(drv);
  drv.cuStreamSynchronize(idle);
  const long long idle_synced = free_bytes(drv);
  drv.cuStreamSynchronize(owner);
  const long long owner_synced = free_bytes(drv);
  drv.cuCtxSynchronize();
  const long long ctx_synced = free_bytes(drv);

  // free_store_now's cost: cuMemFreeAsync on an idle stream, then its
  // synchronization, per store-sized allocation (made ahead).
  std::vector<CUdeviceptr> stores;
  for (int i = 0; i < kStores; ++i) {
    CUdeviceptr s = 0;
    if (drv.cuMemAllocAsync(&s, kStoreBytes, owner) != CUDA_SUCCESS) break;
    stores.push_back(s);
  }
  drv.cuStreamSynchronize(owner);
  const auto t0 = std::chrono::steady_clock::now();
  for (CUdeviceptr s : stores) {
    drv.cuMemFreeAsync(s, idle);
    drv.cuStreamSynchronize(idle);
  }
  const double free_and_sync_ns =
      stores.empty() ? 0.0
                     : std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
                           static_cast<double>(stores.size());
  const auto t1 = std::chrono::steady_clock::now();
  constexpr int kSyncs = 2000;
  for (int i = 0; i < kSyncs; ++i) drv.cuStreamSynchronize(idle);
  const double idle_sync_ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t1).count() / kSyncs;
  drv.cuCtxSynchronize();
  const long long after_all = free_bytes(drv);
  cleanup();
  // Bytes given back at each point, counted from the free memory with the
  // 64 MiB allocated (negative: less free than then).
  auto back = [&](long long now) { return now < 0 || allocated < 0 ? 0 : now - allocated; };
  return fmt::format(
      "{{\"bytes\": {}, \"taken\": {}, \"back_when_the_stream_reached_the_free\": {}, \"event_query\": \"{}\", "
      "\"back_after_syncing_an_idle_stream\": {}, \"back_after_syncing_the_freeing_stream\": {}, "
      "\"back_after_ctx_synchronize\": {}, \"free_and_idle_sync_ns\": {:.0f}, \"stores_timed\": {}, "
      "\"idle_stream_sync_ns\": {:.0f}, \"free_at_end_minus_start\": {}}}",
      kBytes, before - allocated, back(reached_free), drv.name(q), back(idle_synced), back(owner_synced),
      back(ctx_synced), free_and_sync_ns, stores.size(), idle_sync_ns, after_all - before);
}

}  // namespace driverprobe
