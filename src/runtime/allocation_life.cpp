// allocation_life.cpp: the end of managed memory and of the context it lives
// in: cuMemFree, cuMemFreeAsync, cuCtxDestroy, cuDevicePrimaryCtxReset; and
// what the runtime learns from module unloads and sticky errors.
//
// No device-wide wait happens under the runtime mutex: a free first detaches
// the allocation (no launch can find it any more), then waits for the work
// queued in *our* context (whatever context the freeing thread has current),
// then unmaps and releases.
#include "runtime/runtime.h"

#include <new>

#include <algorithm>

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

// Lock held. The allocation is already out of allocations_ and the range map.
void Runtime::release_allocation(Allocation& a) noexcept {
  // The look-ahead stager may be mapping some of its units without the lock:
  // no address range may be freed under a mapping being made.
  if ((stager_busy_ > 0 || !to_settle_.empty()) &&
      std::any_of(a.units.begin(), a.units.end(), [](const auto& e) { return e.second->incoming; })) {
    wait_for_stager_locked();
    // The decode it enqueued may have come after the caller's synchronize
    // (mem_free drops the lock for it): its pages are unmapped below.
    if (prefetch_stream_) driver().base.cuStreamSynchronize(prefetch_stream_.get());
  }
  // Old mappings of handovers inside it go before its address range does.
  settle_handoffs_of(a);
  if (!module_globals_.empty()) drop_global_pins_into(a);
  while (!a.units.empty()) {
    auto u = a.units.begin()->second;
    u->tracked = false;
    std::erase(pending_, u);
    pending_count_.store(pending_.size(), std::memory_order_relaxed);
    if (u->state == UnitState::kStaged && u->run) {
      if (!u->run->memory.empty()) {  // the run's first unit seen here unmaps it
        pool_.unmap(u->run->begin, u->run->memory);
        pool_.release(u->run->memory);  // sized for this allocation's runs: not kept
        stats_.staging_bytes.set(pool_.in_use_bytes());
      }
      u->run.reset();
      std::erase(staged_, u);
    }
    if (u->state != UnitState::kResident) {
      stats_.released_bytes.sub(u->bytes());
      stats_.bytes_original_compressed.sub(u->bytes());
      stats_.bytes_compressed.sub(u->store.bytes);
    }
    stats_.bytes_compressible.sub(u->bytes());
    u->store = StoredRange{};
    u->rescue.reset();
    u->handoff.reset();
    u->dead = true;
    a.units.erase(a.units.begin());
  }
  for (auto& [begin, backing] : a.permanent) {
    pool_.unmap(begin, backing.second);
    if (!a.dmabuf) {
      pool_.release(backing.second);
      continue;
    }
    // Its own page handles below are released to the driver, which keeps
    // them while a dma-buf holds them; a slice of a staging handle would go
    // back to the pool and be decoded into while a NIC may still write it.
    try {
      dmabuf_kept_.push_back(std::move(backing.second));
    } catch (...) {
      (void)new (std::nothrow) StagingPieces(std::move(backing.second));  // leaked rather than reused
    }
  }
  a.permanent.clear();
  vmm_.release_pages(a.base, a.pages, 0, a.pages.size());
  if (a.shared) {  // importers keep their own mapping of the handle
    if (a.shared->mapped) vmm_.unmap(a.base, a.bytes);
    if (a.shared->offered) fdx::withdraw(a.shared->key);
    a.shared.reset();
  }
  vmm_.free_address_range(a.base, a.bytes);
  stats_.bytes_tagged.sub(a.tags.tagged_bytes());
  emit("free", a.base, a.bytes);
  ++memory_epoch_;
}

// Lock held: takes the allocation out of every lookup; its units are marked
// dead so eviction, prefetch and compression leave them alone.
std::unique_ptr<Runtime::Allocation> Runtime::detach_allocation(CUdeviceptr base) noexcept {
  auto it = allocations_.find(base);
  if (it == allocations_.end()) return nullptr;
  std::unique_ptr<Allocation> a = std::move(it->second);
  allocations_.erase(it);
  tracked_.replace(a->base, a->base + a->bytes + 1, {});
  allocation_info_.erase(a->base);
  for (auto& [begin, u] : a->units) {
    u->dead = true;
    std::erase(pending_, u);
    std::erase(staged_, u);
  }
  pending_count_.store(pending_.size(), std::memory_order_relaxed);
  return a;
}

CUresult Runtime::mem_free(CUdeviceptr dptr, bool* handled) noexcept {
  std::unique_ptr<Allocation> a;
  CUcontext ctx = nullptr;
  {
    std::lock_guard lock(mutex_);
    a = detach_allocation(dptr);
    if (!a) return CUDA_SUCCESS;
    ctx = context_;
  }
  *handled = true;
  RelaxedCaptureScope relaxed;
  // cuMemFree does not return before the device stopped using the memory.
  synchronize_context(ctx);
  std::lock_guard lock(mutex_);
  // Units were taken out of staged_ while still mapped: put the accounting right.
  for (auto& [begin, u] : a->units) u->dead = false;
  release_allocation(*a);
  return CUDA_SUCCESS;
}

// Frees in stream order: the memory must outlive the work queued on `stream`
// before the call (a stream-ordered free of our VMM memory would otherwise
// fail with CUDA_ERROR_INVALID_VALUE and leak).
CUresult Runtime::mem_free_async(CUdeviceptr dptr, CUstream stream, bool per_thread, bool* handled) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (allocations_.find(dptr) == allocations_.end()) return CUDA_SUCCESS;
  }
  RelaxedCaptureScope relaxed;
  const CUresult r = driver().base.cuStreamSynchronize(resolve(stream, per_thread));
  if (r != CUDA_SUCCESS) {
    *handled = true;
    return r;
  }
  return mem_free(dptr, handled);
}

void Runtime::on_module_unload(const void* module) noexcept {
  // Function and kernel handles of the unloaded module may come back for
  // other kernels: forget every cached parameter layout (unloads are rare).
  params_.clear();
  forget_module_globals(module);
}

// Uses recorded with events of `gone` (a context being destroyed) are
// dropped: its work ends with it, and its events must not outlive it.
void Runtime::drop_uses_in(CUcontext gone) noexcept {
  auto drop = [gone](Unit& u) {
    size_t kept = 0;
    for (size_t i = 0; i < u.uses.size(); ++i) {
      if (u.uses[i] && *u.uses[i] && event_context(u.uses[i]->get()) == gone) continue;
      u.uses[kept] = std::move(u.uses[i]);
      u.use_streams[kept++] = u.use_streams[i];
    }
    u.uses.resize(kept);
    u.use_streams.resize(kept);
  };
  for (auto& [base, a] : allocations_)
    for (auto& [begin, u] : a->units) drop(*u);
}

// cuCtxDestroy / cuDevicePrimaryCtxReset of our context: the driver is about
// to free its memory, streams and modules. Release what we hold in it and
// start afresh with the next allocation (in whatever context is current then).
void Runtime::on_context_destroy(CUcontext ctx, CUdevice device, bool primary_reset) noexcept {
  std::lock_guard lock(mutex_);
  if (!setup_tried_ || context_ == nullptr) return;
  const bool ours = primary_reset ? (context_is_primary_ && device == device_) : ctx == context_;
  if (!ours) {
    // Another device's context going: uses recorded on its streams (it read
    // served memory) end with it, and their events go with it.
    if (CUcontext gone = primary_reset ? active_primary_context(device) : ctx) drop_uses_in(gone);
    return;
  }
  RelaxedCaptureScope relaxed;
  wait_for_stager_locked();
  synchronize_context(context_);
  while (!allocations_.empty()) {
    auto a = detach_allocation(allocations_.begin()->first);
    for (auto& [begin, u] : a->units) u->dead = false;
    release_allocation(*a);
  }
  reap_handoffs(true);
  handoffs_.clear();
  staged_.clear();
  pending_.clear();
  pending_count_.store(0, std::memory_order_relaxed);
  graph_pins_ = GraphPins{};
  exec_replays_.clear();
  params_.clear();
  tensor_maps_.clear();
  pointer_arrays_.replace(0, ~CUdeviceptr{0}, {});
  order_ = StagingOrder<Unit>{};
  use_order_ = UseOrder<Unit>{};
  guess_pending_ = false;
  pool_.trim(0);
  store_.reset();
  ahead_store_.reset();
  codec_.reset();
  if (guard_stream_) driver().base.cuStreamSynchronize(guard_stream_.get());  // encodes using the workspace
  guard_workspace_.reset();
  guard_workspace_bytes_ = 0;
  freed_later_.clear();
  held_bytes_ = 0;
  encode_handoff_bytes_ = 0;
  if (release_stream_) driver().base.cuStreamSynchronize(release_stream_.get());  // stores freed after decodes
  if (internal_) driver().base.cuStreamSynchronize(internal_.get());  // the stores' stream-ordered frees
  set_store_stream(nullptr);
  internal_.reset();
  prefetch_stream_.reset();
  release_stream_.reset();
  return_stream_.reset();  // synchronized after each free: nothing queued
  guard_stream_.reset();
  kept_until_.clear();  // the context's work is over: its decodes read nothing more
  rescue_.release();
  parked_.release();
  kept_stores_.release();
  handoffs_enabled_ = false;
  status_host_.reset();
  served_context_.store(nullptr, std::memory_order_release);
  context_ = nullptr;
  if (primary_reset) primary_kept_ = false;  // a reset may have dropped the reference: take one again
  setup_tried_ = false;
  setup_ok_ = false;
  launch_staging_peak_ = 0;
  reserve_given_up_ = false;
  log(LogLevel::kInfo, "context {}: released everything the runtime held in it",
      primary_reset ? "reset" : "destroyed");
}

void Runtime::on_sticky_error(CUresult result, const char* api) noexcept {
  check_status_word();
  std::lock_guard lock(mutex_);
  if (result != CUDA_ERROR_ILLEGAL_ADDRESS || illegal_address_reported_) return;
  if (stats_.bytes_original_compressed.get() == 0) return;
  illegal_address_reported_ = true;
  log(LogLevel::kError,
      "{} reports an illegal address while {} bytes were held compressed: a kernel may have read them through "
      "a pointer neuzip cannot see (a pointer stored in device memory, NCCL). Check with NEUZIP=0; then "
      "nz_untag what such kernels read, or raise NEUZIP_MIN_BYTES above its allocation (docs/RUNTIME.md)",
      api != nullptr ? api : "a CUDA call", stats_.bytes_original_compressed.get());
}

}  // namespace nz::rt
