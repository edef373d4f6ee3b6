#include "runtime/runtime.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "runtime/log.h"

namespace nz::rt {
namespace {

constexpr int kChangesBeforeResident = 3;  // changed at this many evictions in a row: stop compressing
// Largest unit: bounds the scratch a compression needs (a bound-sized output
// buffer) and the memory one staging takes, which matters most when memory is
// short. Large weights become several units, all staged when one is touched.
constexpr size_t kMaxUnitBytes = size_t{4} << 20;
constexpr int kCompressAttempts = 8;  // no memory for the scratch: retry at later safe points

// Units a launch or copy on this thread touched, between before_ and after_.
thread_local std::vector<std::shared_ptr<Unit>> t_touched;
thread_local CUstream t_touched_stream = nullptr;
thread_local bool t_touched_capturing = false;

// Switches the calling thread to relaxed capture mode for its lifetime, so
// that our VMM and synchronisation calls do not invalidate a capture that
// another stream of this thread (or another thread) is recording.
class RelaxedCaptureScope {
 public:
  RelaxedCaptureScope() {
    if (driver().base.cuThreadExchangeStreamCaptureMode != nullptr) {
      mode_ = CU_STREAM_CAPTURE_MODE_RELAXED;
      ok_ = driver().base.cuThreadExchangeStreamCaptureMode(&mode_) == CUDA_SUCCESS;
    }
  }
  ~RelaxedCaptureScope() {
    if (ok_) driver().base.cuThreadExchangeStreamCaptureMode(&mode_);
  }
  RelaxedCaptureScope(const RelaxedCaptureScope&) = delete;
  RelaxedCaptureScope& operator=(const RelaxedCaptureScope&) = delete;

 private:
  CUstreamCaptureMode mode_{};
  bool ok_ = false;
};

bool stream_capturing(CUstream s) {
  const auto& api = driver();
  if (api.cuStreamIsCapturing == nullptr) return false;
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  if (api.cuStreamIsCapturing(s, &status) != CUDA_SUCCESS) return false;
  return status == CU_STREAM_CAPTURE_STATUS_ACTIVE;
}

std::string hex(uint64_t v) { return fmt::format("{:#x}", v); }

}  // namespace

// Trace lines carry the device memory in use (cuMemGetInfo) so a trace shows
// the footprint over time.
void Runtime::emit(std::string_view event, uint64_t ptr, uint64_t bytes, std::string_view extra) noexcept {
  if (!trace_.enabled()) return;
  size_t free = 0, total = 0;
  driver().base.cuMemGetInfo(&free, &total);
  try {
    trace_.emit(event, ptr, bytes,
                fmt::format("\"used\":{}{}{}", total - free, extra.empty() ? "" : ",", extra));
  } catch (...) {
  }
}

// ---- lifecycle -----------------------------------------------------------------

Runtime::Runtime(const Config& config) : config_(config) {
  if (config_.staging_bytes) stats_.staging_budget.set(*config_.staging_bytes);
  if (!config_.trace_path.empty()) trace_.open(config_.trace_path);
}

void Runtime::initialise(const RuntimeDriverApi& real) noexcept {
  static std::once_flag once;
  std::call_once(once, [&] {
    Config config = config_from_environment();
    set_log_level(config.log_level);
    if (!config.enabled) {
      log(LogLevel::kInfo, "NEUZIP=0: pass-through");
      return;
    }
    set_driver(real);
    try {
      instance_ = new Runtime(config);  // never deleted: hooks may run during exit
    } catch (...) {
      log(LogLevel::kError, "out of memory at start: pass-through");
      return;
    }
    if (config.report || config.log_level >= 1) {
      std::atexit([] {
        if (instance_ != nullptr) instance_->report_at_exit();
      });
    }
    active_.store(true, std::memory_order_release);
    log(LogLevel::kInfo, "active: mode {}, min bytes {}, staging {}",
        config.mode == NZ_LOSSLESS ? "lossless" : fmt::format("lossy:{}:{}", config.lossy_kept_bits, config.lossy_block),
        config.min_bytes, config.staging_bytes ? fmt::format("{} MiB", *config.staging_bytes >> 20) : "adaptive");
  });
}

bool Runtime::ensure_setup() noexcept {
  if (setup_tried_) return setup_ok_;
  const auto& api = driver().base;
  CUcontext ctx = nullptr;
  if (api.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || ctx == nullptr) return false;  // try again later
  setup_tried_ = true;
  context_ = ctx;
  CUdevice device = 0;
  if (api.cuCtxGetDevice(&device) != CUDA_SUCCESS || !vmm_.init(device)) return false;
  std::string error;
  codec_ = gpu::DeviceCodec::create(api, error);
  if (!codec_) {
    log(LogLevel::kError, "device codec unavailable ({}): pass-through", error);
    return false;
  }
  CUstream s = nullptr;
  if (api.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS) return false;
  internal_ = UniqueStream(s);
  void* status = nullptr;
  if (api.cuMemAllocHost(&status, 64) != CUDA_SUCCESS) return false;
  std::memset(status, 0, 64);
  status_host_ = UniqueHostMemory(status);
  store_ = std::make_unique<CompressedStore>(*codec_, internal_.get(),
                                             static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(status)));
  setup_ok_ = true;
  log(LogLevel::kDebug, "set up: page {} bytes, codec {}", vmm_.page_size(),
      codec_->backend() == gpu::Backend::kCuda ? "cuda" : "simulator");
  return true;
}

CUstream Runtime::resolve(CUstream s, bool per_thread) const noexcept {
  if (per_thread && s == nullptr) return CU_STREAM_PER_THREAD;
  return s;
}

// ---- allocation ---------------------------------------------------------------------

CUresult Runtime::mem_alloc(CUdeviceptr* dptr, size_t bytes, bool* handled) noexcept {
  if (bytes < config_.min_bytes || bytes == 0) return CUDA_SUCCESS;
  compress_pending(false);
  std::lock_guard lock(mutex_);
  if (!ensure_setup()) return CUDA_SUCCESS;
  CUcontext ctx = nullptr;
  if (driver().base.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || ctx != context_) return CUDA_SUCCESS;
  auto a = std::make_unique<Allocation>();
  CUresult r = vmm_.allocate(bytes, a->base, a->pages);
  if (r == CUDA_ERROR_OUT_OF_MEMORY && evict_all(true) > 0) r = vmm_.allocate(bytes, a->base, a->pages);
  if (r != CUDA_SUCCESS) {
    log(LogLevel::kDebug, "VMM allocation of {} bytes failed ({}): passed to the driver", bytes, error_name(r));
    return CUDA_SUCCESS;
  }
  a->bytes = vmm_.round_up(bytes);
  *dptr = a->base;
  *handled = true;
  emit("alloc", a->base, bytes);
  allocations_.emplace(a->base, std::move(a));
  sample_device_used();
  return CUDA_SUCCESS;
}

CUresult Runtime::mem_free(CUdeviceptr dptr, bool* handled) noexcept {
  std::lock_guard lock(mutex_);
  auto it = allocations_.find(dptr);
  if (it == allocations_.end()) return CUDA_SUCCESS;
  *handled = true;
  Allocation& a = *it->second;
  // cuMemFree does not return before the device stopped using the memory; our
  // unmaps must not run ahead of queued work either.
  driver().base.cuCtxSynchronize();
  while (!a.units.empty()) {
    auto u = a.units.begin()->second;
    u->tracked = false;
    std::erase(pending_, u);
    pending_count_.store(pending_.size(), std::memory_order_relaxed);
    if (u->state == UnitState::kStaged) {
      vmm_.unmap(u->begin, u->bytes());
      pool_.give_back(std::move(u->staging), u->bytes());
      stats_.staging_bytes.set(pool_.in_use_bytes());
      std::erase(staged_, u);
    }
    if (u->state != UnitState::kResident) {
      stats_.released_bytes.sub(u->bytes());
      stats_.bytes_original_compressed.sub(u->bytes());
      stats_.bytes_compressed.sub(u->store.bytes);
    }
    stats_.bytes_compressible.sub(u->bytes());
    u->store = StoredRange{};
    u->dead = true;
    a.units.erase(a.units.begin());
  }
  tracked_.replace(a.base, a.base + a.bytes, {});
  for (auto& [begin, backing] : a.permanent) vmm_.unmap(begin, backing.first);
  a.permanent.clear();
  vmm_.release_pages(a.base, a.pages, 0, a.pages.size());
  vmm_.free_address_range(a.base, a.bytes);
  stats_.bytes_tagged.sub(a.tags.tagged_bytes());
  emit("free", a.base, a.bytes);
  allocations_.erase(it);
  return CUDA_SUCCESS;
}

void Runtime::on_foreign_free(CUdeviceptr) noexcept {
  // Only memory the runtime serves is ever tagged, so nothing refers to it.
}

Runtime::Allocation* Runtime::allocation_containing(CUdeviceptr p) noexcept {
  auto it = allocations_.upper_bound(p);
  if (it == allocations_.begin()) return nullptr;
  --it;
  Allocation* a = it->second.get();
  return p < a->base + a->bytes ? a : nullptr;
}

// ---- tagging ---------------------------------------------------------------------------

void Runtime::tag_locked(Allocation& a, CUdeviceptr begin, CUdeviceptr end, int dtype, SharedEvent filled) noexcept {
  end = std::min<CUdeviceptr>(end, a.base + a.bytes);
  if (begin >= end) return;
  try {
    const uint64_t before = a.tags.tagged_bytes();
    a.tags.add(begin, end, dtype);
    const uint64_t after = a.tags.tagged_bytes();
    stats_.bytes_tagged.add(after - before);
    std::erase_if(a.recent_fills, [](const SharedEvent& e) { return event_done(e); });
    if (filled) a.recent_fills.push_back(std::move(filled));
  } catch (...) {
    return;
  }
  emit("tag", begin, end - begin, fmt::format("\"dtype\":{}", dtype));
  replan(a);
}

void Runtime::replan(Allocation& a) noexcept {
  std::vector<PlannedUnit> plan;
  try {
    plan = a.tags.plan(a.base, a.bytes, vmm_.page_size(), kMaxUnitBytes);
  } catch (...) {
    return;
  }
  // Units that no longer match the plan go back to resident memory.
  std::vector<std::shared_ptr<Unit>> stale;
  for (auto& [begin, u] : a.units) {
    const bool kept = std::any_of(plan.begin(), plan.end(),
                                  [&](const PlannedUnit& p) { return p.begin == u->begin && p.end == u->end; });
    if (!kept) stale.push_back(u);
  }
  for (auto& u : stale) retire(a, u);
  for (const PlannedUnit& p : plan) {
    auto it = a.units.find(p.begin);
    if (it != a.units.end()) {
      // Refilled by a new copy: the producers to wait for before compressing.
      if (it->second->state == UnitState::kResident) it->second->filled = a.recent_fills;
      continue;
    }
    auto u = std::make_shared<Unit>();
    u->begin = p.begin;
    u->end = p.end;
    u->dtype = p.dtype;
    u->allocation = a.base;
    u->filled = a.recent_fills;
    try {
      a.units.emplace(p.begin, u);
      u->tracked = true;
      pending_.push_back(u);
      pending_count_.store(pending_.size(), std::memory_order_relaxed);
    } catch (...) {
      continue;
    }
    stats_.bytes_compressible.add(u->bytes());
    emit("unit", u->begin, u->bytes());
  }
  republish(a);
}

void Runtime::republish(Allocation& a) noexcept {
  try {
    std::vector<RangeMap<TagExtent>::Entry> entries;
    a.tags.for_each([&](CUdeviceptr b, CUdeviceptr e, int) {
      auto extent = std::make_shared<TagExtent>();
      for (auto it = a.units.lower_bound(b > a.base + vmm_.page_size() ? b - vmm_.page_size() : a.base);
           it != a.units.end() && it->second->begin < e; ++it) {
        if (it->second->tracked && it->second->end > b) extent->units.push_back(it->second);
      }
      if (!extent->units.empty()) entries.push_back({b, e, std::move(extent)});
    });
    tracked_.replace(a.base, a.base + a.bytes, std::move(entries));
  } catch (...) {
    log(LogLevel::kError, "out of memory publishing ranges");
  }
}

void Runtime::untrack(Allocation& a, const std::shared_ptr<Unit>& u) noexcept {
  if (!u->tracked) return;
  u->tracked = false;
  republish(a);
  std::erase(pending_, u);
  pending_count_.store(pending_.size(), std::memory_order_relaxed);
}

// The range becomes plain resident memory for good (untagged, or changed too often).
void Runtime::retire(Allocation& a, const std::shared_ptr<Unit>& u) noexcept {
  const auto& api = driver().base;
  if (u->state == UnitState::kCompressed) {
    // Decode into fresh memory that becomes its permanent backing.
    if (stage(*u, internal_.get(), false) != CUDA_SUCCESS) {
      log(LogLevel::kError, "cannot restore range {} to resident memory; it stays compressed", hex(u->begin));
      return;
    }
    // Work queued later on other streams must find the data decoded.
    api.cuStreamSynchronize(internal_.get());
  }
  if (u->state == UnitState::kStaged) {
    // The staging pages stay mapped where they are and become its backing.
    pool_.detach(u->bytes());
    stats_.staging_bytes.set(pool_.in_use_bytes());
    stats_.released_bytes.sub(u->bytes());
    stats_.bytes_original_compressed.sub(u->bytes());
    stats_.bytes_compressed.sub(u->store.bytes);
    try {
      a.permanent[u->begin] = {u->bytes(), std::move(u->staging)};
    } catch (...) {
    }
    std::erase(staged_, u);
  }
  untrack(a, u);
  stats_.bytes_compressible.sub(u->bytes());
  u->store = StoredRange{};
  u->state = UnitState::kResident;
  u->dead = true;
  a.units.erase(u->begin);
  emit("resident", u->begin, u->bytes());
}

int Runtime::tag(CUdeviceptr ptr, size_t bytes, int dtype) noexcept {
  if (bytes == 0 || dtype < NZ_TAG_BYTES || dtype > NZ_TAG_FP32 || ptr + bytes < ptr) return NZ_RT_INVALID;
  std::lock_guard lock(mutex_);
  Allocation* a = allocation_containing(ptr);
  if (a == nullptr) return NZ_RT_NOT_MANAGED;
  // The content is whatever work already queued writes: wait for all of it
  // (the legacy stream orders after every blocking stream).
  tag_locked(*a, ptr, ptr + bytes, dtype, record_event(CU_STREAM_LEGACY));
  return NZ_RT_OK;
}

int Runtime::untag(CUdeviceptr ptr, size_t bytes) noexcept {
  if (bytes == 0 || ptr + bytes < ptr) return NZ_RT_INVALID;
  std::lock_guard lock(mutex_);
  Allocation* a = allocation_containing(ptr);
  if (a == nullptr) return NZ_RT_NOT_MANAGED;
  const CUdeviceptr end = std::min<CUdeviceptr>(ptr + bytes, a->base + a->bytes);
  const uint64_t before = a->tags.tagged_bytes();
  a->tags.remove(ptr, end);
  stats_.bytes_tagged.sub(before - a->tags.tagged_bytes());
  emit("untag", ptr, end - ptr);
  replan(*a);
  return NZ_RT_OK;
}

// ---- compression --------------------------------------------------------------------

void Runtime::compress_pending(bool wait_for_producers) noexcept {
  if (pending_count_.load(std::memory_order_relaxed) == 0) return;
  std::unique_lock lock(mutex_, std::defer_lock);
  if (wait_for_producers) lock.lock();
  else if (!lock.try_lock()) return;
  if (!setup_ok_) return;
  RelaxedCaptureScope relaxed;
  auto work = pending_;
  for (auto& u : work) {
    if (u->dead || u->state != UnitState::kResident || u->in_flight > 0 || u->pins > 0) continue;
    if (wait_for_producers) {
      for (auto& e : u->filled) if (e && *e) driver().base.cuEventSynchronize(e->get());
      u->wait_uses();
    }
    if (!std::all_of(u->filled.begin(), u->filled.end(), event_done) || !u->uses_done()) continue;
    Allocation* a = allocation_containing(u->begin);
    if (a == nullptr) continue;
    compress_unit(*a, u);
  }
}

void Runtime::compress_unit(Allocation& a, const std::shared_ptr<Unit>& u) noexcept {
  std::erase(pending_, u);
  pending_count_.store(pending_.size(), std::memory_order_relaxed);
  u->filled.clear();
  const size_t page = vmm_.page_size();
  const size_t first = (u->begin - a.base) / page, count = u->bytes() / page;
  // Which memory backs it now: its own pages, or a permanent staging handle.
  const bool own_pages = std::all_of(a.pages.begin() + first, a.pages.begin() + first + count,
                                     [](CUmemGenericAllocationHandle h) { return h != 0; });
  auto permanent = a.permanent.find(u->begin);
  const bool own_handle = permanent != a.permanent.end() && permanent->second.first == u->bytes();
  StoredRange stored;
  const CompressOutcome outcome =
      (own_pages || own_handle) ? store_->compress(u->begin, u->bytes(), u->dtype, config_, stored)
                                : CompressOutcome::kFailed;
  if (outcome == CompressOutcome::kNoMemory && ++u->compress_attempts < kCompressAttempts) {
    // Memory may be freed later (evictions, frees): stay pending.
    try {
      pending_.push_back(u);
      pending_count_.store(pending_.size(), std::memory_order_relaxed);
      evict_all(false);
      return;
    } catch (...) {
    }
  }
  if (outcome != CompressOutcome::kStored) {
    // Poor ratio, no memory for the store, or an odd backing: leave it resident.
    u->want_compress = false;
    untrack(a, u);
    emit("keep_resident", u->begin, u->bytes(),
                fmt::format("\"reason\":\"{}\"", outcome == CompressOutcome::kPoorRatio ? "ratio"
                                                 : outcome == CompressOutcome::kNoMemory ? "memory"
                                                                                          : "failed"));
    log(LogLevel::kDebug, "range {} ({} bytes) stays resident", hex(u->begin), u->bytes());
    return;
  }
  // compress() waited for the internal stream, and no launch touched the
  // range since its last use completed: releasing the pages is safe.
  if (own_pages) {
    vmm_.release_pages(a.base, a.pages, first, count);
  } else {
    vmm_.unmap(u->begin, u->bytes());
    a.permanent.erase(permanent);
  }
  u->store = std::move(stored);
  u->state = UnitState::kCompressed;
  stats_.released_bytes.add(u->bytes());
  stats_.bytes_original_compressed.add(u->bytes());
  stats_.bytes_compressed.add(u->store.bytes);
  update_saved();
  emit("compress", u->begin, u->bytes(), fmt::format("\"compressed\":{}", u->store.bytes));
  log(LogLevel::kDebug, "compressed {} bytes at {} into {}", u->bytes(), hex(u->begin), u->store.bytes);
}

// ---- staging ----------------------------------------------------------------------------

CUresult Runtime::stage(Unit& u, CUstream stream, bool capturing) noexcept {
  const auto& api = driver().base;
  UniquePhysicalMemory handle;
  CUresult r = pool_.acquire(u.bytes(), handle);
  if (r == CUDA_ERROR_OUT_OF_MEMORY) {
    evict_all(true);
    r = pool_.acquire(u.bytes(), handle);
  }
  if (r != CUDA_SUCCESS) {
    log(LogLevel::kError, "no memory to stage {} bytes at {}: {}", u.bytes(), hex(u.begin), error_name(r));
    return r;
  }
  r = vmm_.map(u.begin, u.bytes(), handle.get());
  if (r != CUDA_SUCCESS) {
    pool_.give_back(std::move(handle), u.bytes());
    return r;
  }
  const CUstream decode_stream = capturing ? internal_.get() : stream;
  r = store_->decode(u.store, decode_stream, u.begin);
  if (r != CUDA_SUCCESS) {
    vmm_.unmap(u.begin, u.bytes());
    pool_.give_back(std::move(handle), u.bytes());
    return r;
  }
  u.ready = record_event(decode_stream);
  u.add_use(u.ready);
  if (capturing) api.cuStreamSynchronize(internal_.get());
  u.staging = std::move(handle);
  u.state = UnitState::kStaged;
  stats_.decompressions.add();
  stats_.staging_bytes.set(pool_.in_use_bytes());
  stats_.staging_bytes_peak.raise_to(pool_.in_use_bytes());
  update_saved();
  emit("stage", u.begin, u.bytes());
  return CUDA_SUCCESS;
}

CUresult Runtime::prepare(std::vector<std::shared_ptr<Unit>>& touched, CUstream stream, const char* what) noexcept {
  std::lock_guard lock(mutex_);
  const bool capturing = stream_capturing(stream);
  std::optional<RelaxedCaptureScope> relaxed;
  if (capturing) relaxed.emplace();
  bool faulted = false;
  CUresult result = CUDA_SUCCESS;
  for (auto& u : touched) {
    if (u->dead) continue;
    if (u->state == UnitState::kCompressed) {
      CUresult r = stage(*u, stream, capturing);
      if (r != CUDA_SUCCESS) {
        result = r;
        continue;
      }
      faulted = true;
      try {
        staged_.push_back(u);
      } catch (...) {
      }
    } else if (u->state == UnitState::kStaged && u->ready && !event_done(u->ready)) {
      // Staged by another stream moments ago: order after its decode on the GPU.
      if (capturing) driver().base.cuEventSynchronize(u->ready->get());
      else driver().base.cuStreamWaitEvent(stream, u->ready->get(), 0);
    }
    ++u->in_flight;
    u->lru_tick = ++tick_;
    if (capturing) ++u->pins;  // a graph replays this without asking us: keep it mapped
  }
  if (result != CUDA_SUCCESS) {
    // The shim will not forward the call nor call after_*: undo the holds.
    for (auto& u : touched) {
      if (u->in_flight > 0) --u->in_flight;
    }
    touched.clear();
  }
  if (faulted) {
    stats_.faults.add();
    emit("fault", 0, 0, fmt::format("\"api\":\"{}\"", what != nullptr ? what : "?"));
  }
  enforce_budget();
  return result;
}

void Runtime::finish_use(CUstream stream, CUresult result) noexcept {
  if (t_touched.empty()) return;
  {
    std::lock_guard lock(mutex_);
    SharedEvent done = t_touched_capturing ? nullptr : record_event(stream);
    for (auto& u : t_touched) {
      if (u->in_flight > 0) --u->in_flight;
      if (done) u->add_use(done);
    }
  }
  t_touched.clear();
  if (result == CUDA_ERROR_LAUNCH_FAILED) check_status_word();
}

// ---- launches and copies ---------------------------------------------------------------

void Runtime::collect_units(const TagExtent& extent) {
  for (const auto& u : extent.units) {
    if (std::find(t_touched.begin(), t_touched.end(), u) == t_touched.end()) t_touched.push_back(u);
  }
}

CUresult Runtime::before_launch(const LaunchDesc& d) noexcept {
  stats_.launches_seen.add();
  compress_pending(false);
  if (tracked_.empty()) return CUDA_SUCCESS;
  const auto snapshot = tracked_.snapshot();
  t_touched.clear();
  try {
    for_each_param_word(d, params_, [&](uint64_t word) {
      if (const auto* e = RangeMap<TagExtent>::find(*snapshot, word)) collect_units(*e->value);
    });
  } catch (...) {
    t_touched.clear();
    return CUDA_SUCCESS;
  }
  if (t_touched.empty()) return CUDA_SUCCESS;
  t_touched_stream = resolve(d.stream, d.per_thread_stream);
  t_touched_capturing = stream_capturing(t_touched_stream);
  return prepare(t_touched, t_touched_stream, d.api);
}

void Runtime::after_launch(const LaunchDesc& d, CUresult result) noexcept {
  finish_use(resolve(d.stream, d.per_thread_stream), result);
}

CUresult Runtime::before_transfer(const TransferDesc& d) noexcept {
  compress_pending(false);
  if (tracked_.empty()) return CUDA_SUCCESS;
  const auto snapshot = tracked_.snapshot();
  t_touched.clear();
  try {
    for (size_t i = 0; i < d.span_count; ++i) {
      const Span& s = d.spans[i];
      RangeMap<TagExtent>::for_each_overlapping(*snapshot, s.ptr, s.ptr + s.bytes,
                                                [&](const auto& e) { collect_units(*e.value); });
    }
  } catch (...) {
    t_touched.clear();
    return CUDA_SUCCESS;
  }
  if (t_touched.empty()) return CUDA_SUCCESS;
  t_touched_stream = resolve(d.stream, d.per_thread_stream);
  t_touched_capturing = stream_capturing(t_touched_stream);
  return prepare(t_touched, t_touched_stream, d.api);
}

void Runtime::after_transfer(const TransferDesc& d, CUresult result) noexcept {
  const CUstream stream = resolve(d.stream, d.per_thread_stream);
  finish_use(stream, result);
  if (result != CUDA_SUCCESS || !d.host_to_device || stream_capturing(stream)) return;
  {
    std::lock_guard lock(mutex_);
    if (allocations_.empty()) return;
    SharedEvent filled;
    for (size_t i = 0; i < d.span_count; ++i) {
      const Span& s = d.spans[i];
      if (s.access != Access::kWrite || s.bytes == 0) continue;
      Allocation* a = allocation_containing(s.ptr);
      if (a == nullptr) continue;
      if (!filled) filled = d.is_async ? record_event(stream) : nullptr;
      tag_locked(*a, s.ptr, s.ptr + s.bytes, config_.htod_dtype, filled);
    }
  }
  compress_pending(false);
}

// ---- graphs -----------------------------------------------------------------------------------

void Runtime::on_capture_begin(CUstream) noexcept {}
void Runtime::on_capture_end(CUstream, CUgraph) noexcept {}
void Runtime::on_graph_instantiate(CUgraphExec, CUgraph) noexcept {}
void Runtime::on_graph_exec_destroy(CUgraphExec) noexcept {}
CUresult Runtime::before_graph_launch(CUgraphExec, CUstream) noexcept { return CUDA_SUCCESS; }

void Runtime::on_tensor_map(const CUtensorMap*, CUdeviceptr global_address, size_t bytes) noexcept {
  emit("tensor_map", global_address, bytes);
}

// ---- eviction and pressure -------------------------------------------------------------------

bool Runtime::memory_plentiful() noexcept {
  size_t free = 0, total = 0;
  if (driver().base.cuMemGetInfo(&free, &total) != CUDA_SUCCESS || total == 0) return false;
  stats_.device_used_peak.raise_to(total - free);
  return free > total / 8;
}

void Runtime::sample_device_used() noexcept {
  size_t free = 0, total = 0;
  if (driver().base.cuMemGetInfo(&free, &total) == CUDA_SUCCESS) stats_.device_used_peak.raise_to(total - free);
}

void Runtime::update_saved() noexcept { stats_.device_bytes_saved(); }

bool Runtime::evict(Allocation& a, const std::shared_ptr<Unit>& u) noexcept {
  uint64_t hash = 0;
  if (store_->hash(u->begin, u->bytes(), hash) != CUDA_SUCCESS) return false;
  if (hash == u->store.hash) {
    stats_.drops.add();
    u->change_streak = 0;
    emit("drop", u->begin, u->bytes());
  } else {
    ++u->change_streak;
    if (u->change_streak >= kChangesBeforeResident && memory_plentiful()) {
      log(LogLevel::kDebug, "range {} changed at {} uses in a row: resident from now on", hex(u->begin),
          u->change_streak);
      retire(a, u);
      return true;
    }
    StoredRange fresh;
    const CompressOutcome outcome = store_->compress(u->begin, u->bytes(), u->dtype, config_, fresh);
    if (outcome != CompressOutcome::kStored) {
      retire(a, u);  // cannot hold the new content compressed: keep it resident
      return true;
    }
    stats_.bytes_compressed.sub(u->store.bytes);
    stats_.bytes_compressed.add(fresh.bytes);
    u->store = std::move(fresh);
    stats_.recompressions.add();
    emit("recompress", u->begin, u->bytes(), fmt::format("\"compressed\":{}", u->store.bytes));
  }
  vmm_.unmap(u->begin, u->bytes());
  pool_.give_back(std::move(u->staging), u->bytes());
  u->state = UnitState::kCompressed;
  u->ready.reset();
  std::erase(staged_, u);
  stats_.staging_bytes.set(pool_.in_use_bytes());
  update_saved();
  return true;
}

void Runtime::enforce_budget() noexcept {
  const bool fixed = config_.staging_bytes.has_value();
  auto over = [&] {
    if (fixed) return pool_.physical_bytes() > *config_.staging_bytes;
    return !memory_plentiful();
  };
  if (!over()) return;
  pool_.trim(0);
  while (over()) {
    // The least recently used staged range that no queued launch still holds.
    std::shared_ptr<Unit> victim;
    for (auto& u : staged_) {
      if (u->in_flight > 0 || u->pins > 0) continue;
      if (!fixed && !u->uses_done()) continue;  // adaptive: never wait
      if (!victim || u->lru_tick < victim->lru_tick) victim = u;
    }
    if (!victim) break;
    victim->wait_uses();
    Allocation* a = allocation_containing(victim->begin);
    if (a == nullptr || !evict(*a, victim)) break;
    pool_.trim(0);
  }
  if (!fixed) stats_.staging_budget.set(pool_.in_use_bytes());
}

size_t Runtime::evict_all(bool wait) noexcept {
  size_t freed = pool_.trim(0);
  auto victims = staged_;
  for (auto& u : victims) {
    if (u->in_flight > 0 || u->pins > 0 || u->state != UnitState::kStaged) continue;
    if (!u->uses_done()) {
      if (!wait) continue;
      u->wait_uses();
    }
    Allocation* a = allocation_containing(u->begin);
    if (a != nullptr && evict(*a, u)) freed += u->bytes();
  }
  freed += pool_.trim(0);
  return freed;
}

size_t Runtime::evict_idle() noexcept {
  std::lock_guard lock(mutex_);
  return setup_ok_ ? evict_all(true) : 0;
}

bool Runtime::debug_store_of(CUdeviceptr p, CUdeviceptr& store, size_t& bytes) noexcept {
  std::lock_guard lock(mutex_);
  auto* e = RangeMap<TagExtent>::find(*tracked_.snapshot(), p);
  if (e == nullptr) return false;
  for (const auto& u : e->value->units) {
    if (p >= u->begin && p < u->end && u->store.data) {
      store = u->store.data.get();
      bytes = u->store.bytes;
      return true;
    }
  }
  return false;
}

bool Runtime::on_out_of_memory(size_t bytes_wanted) noexcept {
  std::lock_guard lock(mutex_);
  if (!setup_ok_) return false;
  const size_t freed = evict_all(true);
  emit("oom", 0, bytes_wanted, fmt::format("\"freed\":{}", freed));
  return freed > 0;
}

// ---- diagnostics -----------------------------------------------------------------------------

void Runtime::check_status_word() noexcept {
  if (!status_host_) return;
  const auto* word = static_cast<const volatile uint32_t*>(status_host_.get());
  if (*word == 0) return;
  stats_.checksum_failures.add();
  if (!checksum_reported_) {
    checksum_reported_ = true;
    log(LogLevel::kError,
        "checksum mismatch while decompressing a range (decoder status {}: {}): the decode trapped and the "
        "context reports CUDA_ERROR_LAUNCH_FAILED; no work ran on corrupt data",
        static_cast<unsigned>(*word), nz_error_string(static_cast<nz_status>(*word)));
  }
}

void Runtime::fill_stats(nz_runtime_stats& out) noexcept {
  check_status_word();
  stats_.fill(out);
}

void Runtime::report_at_exit() noexcept {
  check_status_word();
  nz_runtime_stats s{};
  stats_.fill(s);
  uint64_t peak = stats_.device_used_peak.get();
  struct SimStats { uint64_t total, physical, peak, faults, launches; };
  using GetStats = int (*)(SimStats*);
  if (auto fn = reinterpret_cast<GetStats>(dlsym(RTLD_DEFAULT, "nzsim_get_stats"))) {
    SimStats sim{};
    if (fn(&sim) == 0) peak = sim.peak;
  }
  log(LogLevel::kError,
      "peak device used {} bytes; tagged {} compressible {} compressed {} -> {}; saved {} (peak {}); "
      "faults {} decompressions {} recompressions {} drops {} staging peak {}; checksum failures {}",
      peak, s.bytes_tagged, s.bytes_compressible, s.bytes_original_compressed, s.bytes_compressed,
      s.device_bytes_saved, s.device_bytes_saved_peak, s.faults, s.decompressions, s.recompressions, s.drops,
      s.staging_bytes_peak, s.checksum_failures);
}

}  // namespace nz::rt
