#include "runtime/driver_objects.h"

#include <time.h>

#include <atomic>

#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nz::rt {
namespace {
RuntimeDriverApi g_api{};
}

const RuntimeDriverApi& driver() noexcept { return g_api; }
void set_driver(const RuntimeDriverApi& api) noexcept { g_api = api; }

const char* error_name(CUresult r) noexcept {
  const char* name = nullptr;
  if (g_api.base.cuGetErrorName == nullptr || g_api.base.cuGetErrorName(r, &name) != CUDA_SUCCESS ||
      name == nullptr) {
    return "CUDA_ERROR_?";
  }
  return name;
}

void EventTraits::destroy(CUevent e) { g_api.base.cuEventDestroy(e); }
namespace {
std::atomic<uint64_t> g_stream_destroys{0};
}  // namespace

uint64_t stream_destroy_epoch() noexcept { return g_stream_destroys.load(std::memory_order_acquire); }
void note_stream_destroyed() noexcept { g_stream_destroys.fetch_add(1, std::memory_order_acq_rel); }

void StreamTraits::destroy(CUstream s) {
  note_stream_destroyed();
  g_api.base.cuStreamDestroy(s);
}
namespace {
std::atomic<CUstream> g_store_stream{nullptr};
}  // namespace

void set_store_stream(CUstream stream) noexcept { g_store_stream.store(stream, std::memory_order_release); }

namespace {
// Whether store_alloc takes stores from the stream-ordered allocator (then
// they may be freed in stream order), and on which stream; null otherwise.
CUstream stream_ordered_store_stream() noexcept {
  if (g_api.cuMemAllocAsync == nullptr || g_api.cuMemFreeAsync == nullptr) return nullptr;
  return g_store_stream.load(std::memory_order_acquire);
}
}  // namespace

CUresult store_alloc(CUdeviceptr* p, size_t bytes) noexcept {
  if (const CUstream s = stream_ordered_store_stream()) return g_api.cuMemAllocAsync(p, bytes, s);
  return g_api.base.cuMemAlloc(p, bytes);
}

// Every UniqueDeviceMemory of the runtime comes from store_alloc.
void DeviceMemoryTraits::destroy(CUdeviceptr p) {
  const CUstream s = g_store_stream.load(std::memory_order_acquire);
  if (s != nullptr && g_api.cuMemFreeAsync != nullptr && g_api.cuMemFreeAsync(p, s) == CUDA_SUCCESS) return;
  g_api.base.cuMemFree(p);
}
uint64_t thread_cpu_ns() noexcept {
  timespec t{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0) return 0;
  return static_cast<uint64_t>(t.tv_sec) * 1000000000u + static_cast<uint64_t>(t.tv_nsec);
}

bool free_store_after(UniqueDeviceMemory& m, CUevent after, CUstream stream) noexcept {
  if (!m) return true;
  // Only memory store_alloc took from the stream-ordered allocator.
  if (stream_ordered_store_stream() == nullptr || stream == nullptr ||
      g_api.base.cuStreamWaitEvent(stream, after, 0) != CUDA_SUCCESS)
    return false;
  if (g_api.cuMemFreeAsync(m.get(), stream) != CUDA_SUCCESS) return false;
  m.release();
  return true;
}

bool free_store_now(UniqueDeviceMemory& m, CUstream idle) noexcept {
  if (!m) return true;
  if (stream_ordered_store_stream() == nullptr || idle == nullptr || g_api.cuMemFreeAsync(m.get(), idle) != CUDA_SUCCESS)
    return false;
  m.release();
  g_api.base.cuStreamSynchronize(idle);  // nothing else queued: only the free
  return true;
}

void PhysicalMemoryTraits::destroy(CUmemGenericAllocationHandle h) { g_api.base.cuMemRelease(h); }
void HostMemoryTraits::destroy(void* p) { g_api.base.cuMemFreeHost(p); }

namespace {

// Events are recorded after every launch that uses a tracked range: reuse
// them instead of creating one each time (cuEventCreate costs microseconds).
// An event can be recorded only on a stream of the context it was created in
// (a program with a context per device launches on all of them), so the pool
// keeps one list per context and remembers each event's context.
class EventPool {
 public:
  // An event of `ctx`, created with `ctx` made current when none is free.
  CUevent take(CUcontext ctx) {
    {
      std::lock_guard lock(mutex_);
      for (auto& [owner, events] : free_) {
        if (owner != ctx || events.empty()) continue;
        CUevent e = events.back();
        events.pop_back();
        --pooled_;
        return e;
      }
    }
    CUcontext current = nullptr;
    g_api.base.cuCtxGetCurrent(&current);
    const bool switched = ctx != nullptr && current != ctx;
    if (switched && g_api.base.cuCtxSetCurrent(ctx) != CUDA_SUCCESS) return nullptr;
    CUevent e = nullptr;
    const bool ok = g_api.base.cuEventCreate(&e, CU_EVENT_DISABLE_TIMING) == CUDA_SUCCESS;
    if (switched) g_api.base.cuCtxSetCurrent(current);
    if (!ok) return nullptr;
    try {
      std::lock_guard lock(mutex_);
      owner_[e] = ctx;
    } catch (...) {
      g_api.base.cuEventDestroy(e);
      return nullptr;
    }
    return e;
  }
  void give_back(CUevent e) {
    std::lock_guard lock(mutex_);
    auto owner = owner_.find(e);
    if (owner != owner_.end() && pooled_ < kMaxPooled) {
      try {
        list_of(owner->second).push_back(e);
        ++pooled_;
        return;
      } catch (...) {
      }
    }
    if (owner != owner_.end()) owner_.erase(owner);
    g_api.base.cuEventDestroy(e);
  }
  // An event the driver refused to record (its context is gone): dropped.
  void discard(CUevent e) {
    {
      std::lock_guard lock(mutex_);
      owner_.erase(e);
    }
    g_api.base.cuEventDestroy(e);
  }
  CUcontext context_of(CUevent e) {
    std::lock_guard lock(mutex_);
    auto it = owner_.find(e);
    return it == owner_.end() ? nullptr : it->second;
  }
  // The context is being destroyed, and its events with it.
  void forget(CUcontext ctx) {
    std::lock_guard lock(mutex_);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->first != ctx) continue;
      pooled_ -= it->second.size();
      free_.erase(it);
      break;
    }
    for (auto it = owner_.begin(); it != owner_.end();) it = it->second == ctx ? owner_.erase(it) : std::next(it);
  }

 private:
  std::vector<CUevent>& list_of(CUcontext ctx) {  // mutex_ held
    for (auto& [owner, events] : free_)
      if (owner == ctx) return events;
    free_.emplace_back(ctx, std::vector<CUevent>{});
    return free_.back().second;
  }

  static constexpr size_t kMaxPooled = 1024;
  std::mutex mutex_;
  std::vector<std::pair<CUcontext, std::vector<CUevent>>> free_;  // a few contexts at most
  std::unordered_map<CUevent, CUcontext> owner_;                   // every event the pool made, live
  size_t pooled_ = 0;
};

EventPool& event_pool() {
  static auto* pool = new EventPool;  // never destroyed: events may be released during exit
  return *pool;
}

}  // namespace

void PooledEventTraits::destroy(CUevent e) { event_pool().give_back(e); }

CUcontext event_context(CUevent e) noexcept {
  try {
    return event_pool().context_of(e);
  } catch (...) {
    return nullptr;
  }
}

CUcontext active_primary_context(CUdevice device) noexcept {
  unsigned flags = 0;
  int active = 0;
  CUcontext primary = nullptr;
  if (g_api.base.cuDevicePrimaryCtxGetState(device, &flags, &active) != CUDA_SUCCESS || !active ||
      g_api.base.cuDevicePrimaryCtxRetain(&primary, device) != CUDA_SUCCESS)
    return nullptr;
  g_api.base.cuDevicePrimaryCtxRelease(device);  // the program holds it (active)
  return primary;
}

void forget_context_events(CUcontext ctx) noexcept {
  try {
    event_pool().forget(ctx);
  } catch (...) {
  }
}

SharedEvent record_event(CUstream stream) noexcept {
  // The stream's context (the calling thread's current one for the special
  // streams): the runtime records on its own streams from any thread, and on
  // a program's streams of other contexts.
  CUcontext ctx = nullptr;
  if (g_api.cuStreamGetCtx == nullptr || g_api.cuStreamGetCtx(stream, &ctx) != CUDA_SUCCESS) ctx = nullptr;
  if (ctx == nullptr) g_api.base.cuCtxGetCurrent(&ctx);
  // A pooled event of a context destroyed since (and its handle value reused
  // by a new one) is refused: dropped, and the next one tried, until the pool
  // makes a fresh one.
  for (int attempt = 0; attempt < 4; ++attempt) {
    CUevent e = nullptr;
    try {
      e = event_pool().take(ctx);
    } catch (...) {
      return nullptr;
    }
    if (e == nullptr) return nullptr;
    if (g_api.base.cuEventRecord(e, stream) != CUDA_SUCCESS) {
      event_pool().discard(e);
      continue;
    }
    PooledEvent owned(e);
    try {
      return std::make_shared<PooledEvent>(std::move(owned));
    } catch (...) {
      return nullptr;
    }
  }
  return nullptr;
}

bool event_done(const SharedEvent& e) noexcept {
  if (!e || !*e) return true;
  return g_api.base.cuEventQuery(e->get()) != CUDA_ERROR_NOT_READY;
}

}  // namespace nz::rt
