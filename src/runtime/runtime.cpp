// runtime.cpp: Runtime's lifecycle (initialise, lazy set-up) and the
// allocation hooks (VMM-backed cuMemAlloc/cuMemFree).
#include "runtime/runtime.h"

#include <pthread.h>

#include <cstdlib>

#include <algorithm>
#include <cstring>

#include "runtime/alloc_sites.h"
#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

// Trace lines carry the device memory in use (cuMemGetInfo) so a trace shows
// the footprint over time.
void Runtime::emit(std::string_view event, uint64_t ptr, uint64_t bytes, std::string_view extra) noexcept {
  if (!trace_.enabled()) return;
  size_t free = 0, total = 0;
  driver().base.cuMemGetInfo(&free, &total);
  try {
    trace_.emit(event, ptr, bytes,
                fmt::format("\"used\":{},\"staging\":{},\"store\":{}{}{}", total - free, pool_.physical_bytes(),
                            stats_.bytes_compressed.get(), extra.empty() ? "" : ",", extra));
  } catch (...) {
  }
}

void Runtime::emit_timed(std::string_view event, uint64_t ptr, uint64_t bytes, TraceClock::time_point start,
                         std::string_view extra) noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(TraceClock::now() - start).count();
  // Every encode passes here: count it (and its host time) for the report.
  if (event == "compress" || event == "recompress" || event == "reencode") {
    stats_.encoded(bytes, ns);
    if (!on_stager_thread()) stats_.hook_encode_ns.add(static_cast<uint64_t>(ns));
  }
  if (!trace_.enabled()) return;
  try {
    emit(event, ptr, bytes, fmt::format("\"ns\":{}{}{}", ns, extra.empty() ? "" : ",", extra));
  } catch (...) {
  }
}

// ---- lifecycle -----------------------------------------------------------------

Runtime::Runtime(const Config& config) : config_(config) {
  if (config_.staging_bytes) stats_.staging_budget.set(*config_.staging_bytes);
  if (!config_.trace_path.empty()) trace_.open_at_first_line(config_.trace_path, config_.trace_run);
}

void Runtime::initialise(const RuntimeDriverApi& real) noexcept {
  static std::once_flag once;
  std::call_once(once, [&] {
    Config config = config_from_environment();
    set_log_level(config.log_level);
    // Before the switch: memory another process shared under neuzip opens
    // here even with NEUZIP=0 (ipc_import.cpp needs only the driver).
    set_driver(real);
    remember_driver_process();
    if (!config.enabled) {
      log(LogLevel::kInfo, "NEUZIP=0: pass-through");
      return;
    }
    try {
      instance_ = new Runtime(config);  // never deleted: hooks may run during exit
    } catch (...) {
      log(LogLevel::kError, "out of memory at start: pass-through");
      return;
    }
    // A child forked from here (a DataLoader worker, Inductor's compile
    // pool) cannot use CUDA: the driver answers CUDA_ERROR_NOT_INITIALIZED.
    // It has this runtime's state but none of its other threads, so a lock
    // one of them held at the fork stays held there for good. The child
    // passes every call through and does nothing at exit: no hang on such
    // a lock, no free or flush answered from the parent's bookkeeping, no
    // second exit report of the parent's figures.
    pthread_atfork(nullptr, nullptr, [] {
      active_.store(false, std::memory_order_relaxed);
      instance_->trace_.close_in_forked_child();
    });
    if (config.report || config.log_level >= 1) {
      std::atexit([] {
        if (Runtime* rt = instance_if_active()) rt->report_at_exit();
      });
    }
    if (!config.trace_path.empty()) {
      std::atexit([] {
        if (Runtime* rt = instance_if_active(); rt && rt->served_anything()) rt->emit_counters();
      });
    }
    instance_->say_pytorch_conf();
    active_.store(true, std::memory_order_release);
    log(LogLevel::kInfo, "active: mode {}, min bytes {}, staging {}",
        config.mode == NZ_LOSSLESS ? "lossless" : fmt::format("lossy:{}:{}", config.lossy_kept_bits, config.lossy_block),
        config.min_bytes, config.staging_bytes ? fmt::format("{} MiB", *config.staging_bytes >> 20) : "adaptive");
  });
}

// PyTorch reads its allocator settings when it first allocates, after this:
// a setting that makes it allocate memory neuzip passes through is said at
// once (the size rule of on_unserved_alloc then stays quiet for that kind).
void Runtime::say_pytorch_conf() noexcept {
  const char* value = nullptr;
  const char* name = pytorch_conf_variable(&value);
  if (const auto kind = pytorch_conf_unserved(value)) say_unserved(*kind, 0, name);  // 0 bytes: asked for
}

// The one line for `kind` (unserved_notice) and its trace event, once.
void Runtime::say_unserved(UnservedKind kind, uint64_t bytes, const char* env_name) noexcept {
  if (unserved_said_[static_cast<int>(kind)].exchange(true)) return;
  try {
    log(LogLevel::kError, "{}", unserved_notice(kind, bytes, env_name));
  } catch (...) {
  }
  emit("unserved", 0, bytes, unserved_reason(kind));
}

// When the runtime's context is the device's primary one, the runtime holds a
// reference of its own: its pinned status word, streams, events and stores
// live in that context, and a program that releases its last reference
// (nzgpubench's session does, before exit) would otherwise destroy them
// under the runtime: on the H200 the exit report then read freed pinned
// memory and crashed the program (2026-12-04). Never released: the driver
// tears the context down at exit; cuDevicePrimaryCtxReset still resets it.
void Runtime::keep_primary_context(CUcontext ctx, CUdevice device) noexcept {
  const auto& api = driver().base;
  if (primary_kept_ || !api.cuDevicePrimaryCtxGetState || !api.cuDevicePrimaryCtxRetain) return;
  unsigned flags = 0;
  int active = 0;
  // Retaining an inactive primary context would create one (device memory).
  if (api.cuDevicePrimaryCtxGetState(device, &flags, &active) != CUDA_SUCCESS || !active) return;
  CUcontext primary = nullptr;
  if (api.cuDevicePrimaryCtxRetain(&primary, device) != CUDA_SUCCESS) return;
  if (primary == ctx) {
    primary_kept_ = true;
    log(LogLevel::kDebug, "holding a reference to the primary context of device {}", static_cast<int>(device));
  } else {
    api.cuDevicePrimaryCtxRelease(device);
  }
}

// Before setup: whether the calling thread's device is the one to serve
// (Config::device). Another device's allocations pass through, said once.
bool Runtime::serves_current_device() noexcept {
  if (!config_.device) return true;
  const auto& api = driver().base;
  CUdevice current = 0;
  int count = 0;
  if (api.cuCtxGetDevice(&current) != CUDA_SUCCESS || driver().cuDeviceGetCount == nullptr ||
      driver().cuDeviceGetCount(&count) != CUDA_SUCCESS || *config_.device >= count)
    return true;  // a process that sees fewer devices (CUDA_VISIBLE_DEVICES per rank): the first serves
  if (static_cast<int>(current) == *config_.device) return true;
  if (!other_device_said_) {
    other_device_said_ = true;
    // Always said: a program that never uses the named device saves nothing.
    log(LogLevel::kError,
        "allocations on device {} pass through: {}={} names the device neuzip serves (NEUZIP_DEVICE=N to choose)",
        static_cast<int>(current), config_.device_source, *config_.device);
  }
  return false;
}

bool Runtime::ensure_setup() noexcept {
  if (setup_tried_) return setup_ok_;
  const auto& api = driver().base;
  CUcontext ctx = nullptr;
  if (api.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || ctx == nullptr) return false;  // try again later
  setup_tried_ = true;
  ever_set_up_.store(true, std::memory_order_relaxed);
  context_ = ctx;
  CUdevice device = 0;
  if (api.cuCtxGetDevice(&device) != CUDA_SUCCESS || !vmm_.init(device)) return false;
  device_ = device;
  device_ordinal_ = static_cast<int>(device);
  keep_primary_context(ctx, device);
  // A fixed budget is an arena of its own size (staging_pool.h).
  if (config_.staging_bytes && *config_.staging_bytes >= vmm_.page_size())
    pool_.set_arena_bytes(*config_.staging_bytes / vmm_.page_size() * vmm_.page_size(), config_.staging_pages);
  // A cuDevicePrimaryCtxReset of this device destroys our context too.
  CUcontext primary = nullptr;
  if (api.cuDevicePrimaryCtxRetain(&primary, device) == CUDA_SUCCESS) {
    context_is_primary_ = primary == ctx;
    api.cuDevicePrimaryCtxRelease(device);
  }
  std::string error;
  codec_ = gpu::DeviceCodec::create(api, error);
  if (!codec_) {
    log(LogLevel::kError, "device codec unavailable ({}): pass-through", error);
    return false;
  }
  CUstream s = nullptr;
  if (api.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS) return false;
  internal_ = UniqueStream(s);
  if (api.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS) return false;
  prefetch_stream_ = UniqueStream(s);
  // Stores given up while staged are freed on it after their decode (no host wait).
  if (api.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS) release_stream_ = UniqueStream(s);
  // Stores the host waited for are freed on it and their memory given back at once.
  if (api.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS) return_stream_ = UniqueStream(s);
  // Handovers (handoff.h): with a fixed budget's arena and a module that has
  // the guard kernel, evictions of unchanged ranges are ordered on the device.
  if (pool_.arena() && codec_->has_guard()) {
    const size_t rescue = config_.handoff_bytes.value_or(2 * *config_.staging_bytes);
    if (rescue > 0 && api.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS) {
      guard_stream_ = UniqueStream(s);
      rescue_.set_capacity(rescue);
      handoffs_enabled_ = true;
    }
  }
  // Allocated at the first park only (out of device memory at an eviction).
  parked_.set_capacity(config_.park_bytes);
  parked_.set_purpose("ranges evicted while the device had no room to encode them: they stay staged");
  // A call over a small budget gives up more than the budget's worth of stores.
  kept_stores_.set_capacity(config_.keep_store_bytes.value_or(
      config_.staging_bytes ? std::max(2 * *config_.staging_bytes, size_t{64} << 20) : size_t{256} << 20));
  kept_stores_.set_purpose("copies of stores given up while staged: their ranges are encoded again");
  set_store_stream(internal_.get());
  void* status = nullptr;
  if (api.cuMemAllocHost(&status, 64) != CUDA_SUCCESS) return false;
  std::memset(status, 0, 64);
  status_host_ = UniqueHostMemory(status);
  store_ = std::make_unique<CompressedStore>(*codec_, internal_.get(),
                                             static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(status)));
  ahead_store_ = std::make_unique<CompressedStore>(*codec_, internal_.get(),
                                                   static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(status)));
  setup_ok_ = true;
  log(LogLevel::kDebug, "set up: page {} bytes, codec {}", vmm_.page_size(),
      codec_->backend() == gpu::Backend::kCuda ? "cuda" : "simulator");
  served_context_.store(context_, std::memory_order_release);
  grant_pending_peers();
  return true;
}

CUstream Runtime::resolve(CUstream s, bool per_thread) const noexcept {
  if (per_thread && s == nullptr) return CU_STREAM_PER_THREAD;
  return s;
}

// ---- allocation ---------------------------------------------------------------------

CUresult Runtime::mem_alloc(CUdeviceptr* dptr, size_t bytes, bool* handled) noexcept {
  if (bytes < config_.min_bytes || bytes == 0) return CUDA_SUCCESS;
  // Weights loaded so far should be compressed before memory runs short:
  // then wait for their copies rather than allocate past them.
  const uint64_t epoch_before = memory_epoch_;
  size_t free = 0, total = 0;
  const bool tight = driver().base.cuMemGetInfo(&free, &total) == CUDA_SUCCESS && free < bytes + total / 4;
  compress_pending(tight);
  std::lock_guard lock(mutex_);
  RelaxedCaptureScope relaxed;
  if (!setup_tried_ && !serves_current_device()) return CUDA_SUCCESS;
  if (!ensure_setup()) return CUDA_SUCCESS;
  CUcontext ctx = nullptr;
  if (driver().base.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || ctx != context_) return CUDA_SUCCESS;
  // VMM maps whole pages. A size just over a page multiple would waste up to
  // a page per allocation, and the program must never run out of memory
  // earlier than without neuzip: such allocations go to the driver.
  const size_t waste = vmm_.round_up(bytes) - bytes;
  if (waste > bytes / 64) {
    log(LogLevel::kDebug, "{} bytes would waste {} in whole pages: passed to the driver", bytes, waste);
    return CUDA_SUCCESS;
  }
  make_staging_room(bytes);
  auto a = std::make_unique<Allocation>();
  CUresult r = vmm_.allocate(bytes, a->base, a->pages);
  // Out of memory: everything the shim's retry would free (on_out_of_memory),
  // here, so that the allocation is still served and its weights can be
  // compressed: passed to the driver it would never be, on the very device
  // that is short of memory.
  if (r == CUDA_ERROR_OUT_OF_MEMORY && reclaim_device_memory(bytes, epoch_before) > 0)
    r = vmm_.allocate(bytes, a->base, a->pages);
  if (r != CUDA_SUCCESS) {
    size_t free_now = 0;
    driver().base.cuMemGetInfo(&free_now, &total);
    log(LogLevel::kDebug, "VMM allocation of {} bytes failed ({}, {} bytes free): passed to the driver", bytes,
        error_name(r), free_now);
    return CUDA_SUCCESS;
  }
  a->bytes = vmm_.round_up(bytes);
  a->requested = bytes;
  a->buffer_id = ++next_buffer_id_;
  managed_low_ = std::min(managed_low_, a->base);
  managed_high_ = std::max(managed_high_, a->base + a->bytes + 1);
  try {
    allocation_info_.insert(a->base, a->base + a->bytes,
                            std::make_shared<AllocationInfo>(
                                AllocationInfo{a->base, bytes, a->buffer_id, context_, device_ordinal_}));
  } catch (...) {
    // Queries then reach the driver, which answers for one VMM mapping.
  }
  *dptr = a->base;
  *handled = true;
  emit("alloc", a->base, bytes, trace_.enabled() ? alloc_site_member(trace_) : std::string());
  Allocation& made = *a;
  allocations_.emplace(made.base, std::move(a));
  tag_if_state(made);
  sample_device_used();
  return CUDA_SUCCESS;
}

// An out-of-memory answered here while memory could still be found would be
// artificial, and fatal to most programs; one at a launch would be worse. So
// idle staged ranges make way first and the allocation goes ahead; staging
// later finds room by evicting and by giving up stores under pressure.
void Runtime::make_staging_room(size_t bytes) noexcept {
  if (stats_.bytes_original_compressed.get() == 0) return;  // nothing will need staging
  size_t room = 0;
  for (const auto& [base, a] : allocations_) room = std::max(room, a->largest_extent);
  size_t free = 0, total = 0;
  if (driver().base.cuMemGetInfo(&free, &total) != CUDA_SUCCESS || free >= bytes + room) return;
  reserve_for_pressure();
  if (!to_settle_.empty()) wait_for_stager_locked();  // evictions handed to the stager: done before more go
  evict_all(true);
}

void Runtime::on_foreign_free(CUdeviceptr dptr) noexcept {
  // Only memory the runtime serves is ever tagged, so nothing refers to it;
  // a stream-ordered allocation may be freed here as well as by cuMemFreeAsync.
  on_unserved_release(UnservedKind::kStreamOrdered, dptr);
}

// Memory the program holds that neuzip passes through: said once per kind
// when it reaches a quarter of the device (at least 64 MiB) and more than
// neuzip has tagged: then the weights are most likely there, in a program
// that needs the memory, and the run would otherwise save nothing silently.
// (A library's buffers, NCCL's, stay below that.)
void Runtime::on_unserved_alloc(UnservedKind kind, uint64_t key, size_t bytes) noexcept {
  // Stream-ordered allocations come at every tensor of PyTorch's async
  // backend: only those cuMemAlloc would have served are counted.
  if (kind == UnservedKind::kStreamOrdered && bytes < config_.min_bytes) return;
  const uint64_t live = unserved_.add(kind, key, bytes);
  if (unserved_said_[static_cast<int>(kind)].load(std::memory_order_relaxed)) return;
  if (live < (uint64_t{64} << 20) || live <= stats_.bytes_tagged.get()) return;
  uint64_t total = device_total_.load(std::memory_order_relaxed);
  if (total == 0) {
    size_t free = 0, t = 0;
    if (driver().base.cuMemGetInfo(&free, &t) != CUDA_SUCCESS) return;  // no context yet: at a later call
    device_total_.store(total = t, std::memory_order_relaxed);
  }
  if (live >= total / 4) say_unserved(kind, live, nullptr);
}

void Runtime::on_unserved_release(UnservedKind kind, uint64_t key) noexcept { unserved_.remove(kind, key); }

Runtime::Allocation* Runtime::allocation_containing(CUdeviceptr p) noexcept {
  auto it = allocations_.upper_bound(p);
  if (it == allocations_.begin()) return nullptr;
  --it;
  Allocation* a = it->second.get();
  return p < a->base + a->bytes ? a : nullptr;
}

}  // namespace nz::rt
