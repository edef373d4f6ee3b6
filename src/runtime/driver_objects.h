// driver_objects.h: RAII owners of the driver handles the runtime creates
// (events, streams, device buffers, physical memory handles), always through
// the real entry points (never our own hooks), and the table that holds them.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <memory>
#include <utility>

#include "runtime/hooks.h"

namespace nz::rt {

// The real driver entry points, set once by on_driver_initialised.
const RuntimeDriverApi& driver() noexcept;
void set_driver(const RuntimeDriverApi& api) noexcept;

// Device memory of the compressed store (stores, encode scratch): allocated
// and freed in stream order on `stream` (the runtime's internal stream), so
// that giving a store back never synchronises the device as cuMemFree does
// (it runs on the thread that happens to evict). Null: cuMemAlloc/cuMemFree.
void set_store_stream(CUstream stream) noexcept;
CUresult store_alloc(CUdeviceptr* p, size_t bytes) noexcept;

// "CUDA_ERROR_X" for logs.
const char* error_name(CUresult r) noexcept;

// Moves-only owner of one handle; `Traits::destroy(handle)` releases it.
template <typename Handle, typename Traits>
class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(Handle h) : handle_(h) {}
  UniqueHandle(UniqueHandle&& o) noexcept : handle_(std::exchange(o.handle_, Handle{})) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) {
      reset();
      handle_ = std::exchange(o.handle_, Handle{});
    }
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() { reset(); }

  Handle get() const { return handle_; }
  explicit operator bool() const { return handle_ != Handle{}; }
  Handle release() { return std::exchange(handle_, Handle{}); }
  void reset() {
    if (handle_ != Handle{}) Traits::destroy(handle_);
    handle_ = Handle{};
  }

 private:
  Handle handle_{};
};

struct EventTraits { static void destroy(CUevent e); };
struct StreamTraits { static void destroy(CUstream s); };
struct DeviceMemoryTraits { static void destroy(CUdeviceptr p); };
struct PhysicalMemoryTraits { static void destroy(CUmemGenericAllocationHandle h); };
struct HostMemoryTraits { static void destroy(void* p); };
struct PooledEventTraits { static void destroy(CUevent e); };  // back to a pool for reuse

using UniqueEvent = UniqueHandle<CUevent, EventTraits>;
using UniqueStream = UniqueHandle<CUstream, StreamTraits>;
using UniqueDeviceMemory = UniqueHandle<CUdeviceptr, DeviceMemoryTraits>;
// Frees store memory (store_alloc) once `after` completed, ordered on the
// device: `stream` waits for the event, then frees it (stream-ordered
// allocator). False, and `m` untouched, where that is not possible (no
// stream-ordered allocator, or the driver refused): the caller waits on the
// host instead.
// The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), in ns.
uint64_t thread_cpu_ns() noexcept;
bool free_store_after(UniqueDeviceMemory& m, CUevent after, CUstream stream) noexcept;
// Frees a store no queued work reads any more (the host saw its last reader
// complete) and gives its memory back to the device now: freed in stream
// order on `idle` (a stream of its own, with nothing else queued), which is
// then synchronized, since the stream-ordered pool keeps freed memory from
// cuMemCreate and cuMemAlloc until a synchronization (release threshold 0).
// Freed on the store stream instead, a lagging store stream kept it: with the
// device behind, each unit of a call staged over its budget kept its store's
// memory beside its pages (lora + TMA extents, NZSIM_LAZY=1: 0.836x -> 0.888x).
// False, and `m` untouched, where that is not possible: the caller frees it as usual.
bool free_store_now(UniqueDeviceMemory& m, CUstream idle) noexcept;
using UniquePhysicalMemory = UniqueHandle<CUmemGenericAllocationHandle, PhysicalMemoryTraits>;
using UniqueHostMemory = UniqueHandle<void*, HostMemoryTraits>;
using PooledEvent = UniqueHandle<CUevent, PooledEventTraits>;

// An event shared by everything that must wait for the same point of a stream
// (e.g. every range a launch touched).
using SharedEvent = std::shared_ptr<PooledEvent>;

// Records a fresh timing-free event on `stream`; null if the driver refused.
SharedEvent record_event(CUstream stream) noexcept;
// A context is being destroyed: its pooled events go with it. Events still
// held are dropped first by their holders (Runtime::on_context_destroy):
// given back after this, a destroyed event's handle would be destroyed or
// pooled again, and may by then name another context's new event.
void forget_context_events(CUcontext ctx) noexcept;
// The context an event of the pool was made in (null: not the pool's).
CUcontext event_context(CUevent e) noexcept;
// `device`'s primary context if it is active (the program holds it), else null.
CUcontext active_primary_context(CUdevice device) noexcept;

// How many streams were destroyed so far (a handle may be reused afterwards).
uint64_t stream_destroy_epoch() noexcept;
void note_stream_destroyed() noexcept;
// True when the event has completed (or is null: nothing to wait for).
bool event_done(const SharedEvent& e) noexcept;

}  // namespace nz::rt
