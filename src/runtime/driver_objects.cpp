#include "runtime/driver_objects.h"

#include <time.h>

#include <atomic>

#include <mutex>
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
class EventPool {
 public:
  CUevent take() {
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        CUevent e = free_.back();
        free_.pop_back();
        return e;
      }
    }
    CUevent e = nullptr;
    return g_api.base.cuEventCreate(&e, CU_EVENT_DISABLE_TIMING) == CUDA_SUCCESS ? e : nullptr;
  }
  void give_back(CUevent e) {
    std::lock_guard lock(mutex_);
    if (free_.size() < kMaxPooled) {
      try {
        free_.push_back(e);
        return;
      } catch (...) {
      }
    }
    g_api.base.cuEventDestroy(e);
  }

 private:
  static constexpr size_t kMaxPooled = 1024;
  std::mutex mutex_;
  std::vector<CUevent> free_;
};

EventPool& event_pool() {
  static auto* pool = new EventPool;  // never destroyed: events may be released during exit
  return *pool;
}

}  // namespace

void PooledEventTraits::destroy(CUevent e) { event_pool().give_back(e); }

SharedEvent record_event(CUstream stream) noexcept {
  CUevent e = event_pool().take();
  if (e == nullptr) return nullptr;
  PooledEvent owned(e);
  if (g_api.base.cuEventRecord(e, stream) != CUDA_SUCCESS) return nullptr;
  try {
    return std::make_shared<PooledEvent>(std::move(owned));
  } catch (...) {
    return nullptr;
  }
}

bool event_done(const SharedEvent& e) noexcept {
  if (!e || !*e) return true;
  return g_api.base.cuEventQuery(e->get()) != CUDA_ERROR_NOT_READY;
}

}  // namespace nz::rt
