// external_work.cpp: work a communication library (NCCL) enqueues on the
// program's streams, reaching its buffers through device-side descriptors
// that no launch scan sees: collectives and send/receive (staged exactly like
// a copy, held across ncclGroupStart/End), and buffers it keeps registered
// (pinned while the registration lasts).
#include "runtime/runtime.h"

#include <algorithm>

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

namespace {

// What the collectives of this thread's open NCCL group hold, per stream:
// NCCL enqueues nothing before the outermost ncclGroupEnd, so an event
// recorded after each call would complete before the collective even started.
struct GroupHold {
  CUstream stream = nullptr;
  bool capturing = false;
  std::vector<std::shared_ptr<Unit>> units;
};
thread_local int t_group_depth = 0;
thread_local std::vector<GroupHold> t_group;
// Streams the open group makes wait for peers (ncclWaitSignal): marked once
// the group's end enqueued the waits (a mark's event recorded before would
// complete at once).
thread_local std::vector<CUstream> t_group_waits;

// What each NCCL call in progress on this thread holds, from before_external
// to after_external. The launch hooks' own record cannot carry it: NCCL's
// call launches kernels, copies and records events through hooked driver
// calls in between, and each of those starts a record of its own.
struct CallHold {
  bool capturing = false;
  std::vector<std::shared_ptr<Unit>> units;
};
thread_local std::vector<CallHold> t_calls;

}  // namespace

CUresult Runtime::before_external(const TransferDesc& d) noexcept {
  if (!config_.nccl_hooks) return CUDA_SUCCESS;
  // Exactly the bytes the call names: a collective reads and writes count x
  // type size from each pointer, nothing around it (no kernel reach).
  const CUresult r = before_transfer(d);
  if (r != CUDA_SUCCESS) return r;  // nothing held (prepare undid its holds)
  CallHold hold;
  hold.units = take_touched(hold.capturing);
  try {
    t_calls.push_back(std::move(hold));
  } catch (...) {
    // No memory to remember them: they stay held for good (never unmapped under NCCL).
    log(LogLevel::kError, "out of memory recording an NCCL call: its ranges stay staged for good");
    t_calls.clear();
  }
  return CUDA_SUCCESS;
}

void Runtime::after_external(const TransferDesc& d, ExternalOutcome outcome) noexcept {
  if (!config_.nccl_hooks || t_calls.empty()) return;
  const CUstream stream = resolve(d.stream, d.per_thread_stream);
  CallHold call = std::move(t_calls.back());
  t_calls.pop_back();
  const bool capturing = call.capturing;
  auto& units = call.units;
  if (units.empty()) return;
  if (outcome == ExternalOutcome::kPending) {
    // A nonblocking communicator enqueues later, at a time we cannot see: the
    // ranges stay held (never evicted) for good rather than risk unmapping
    // pages a collective is about to read. Costs staging memory, not data.
    std::lock_guard lock(mutex_);
    if (!pending_collective_reported_) {
      pending_collective_reported_ = true;
      log(LogLevel::kError,
          "{} returned ncclInProgress (nonblocking communicator): the ranges it uses stay staged for good",
          d.api != nullptr ? d.api : "a collective");
    }
    return;
  }
  if (t_group_depth > 0 && outcome == ExternalOutcome::kEnqueued) {
    try {
      auto it = std::find_if(t_group.begin(), t_group.end(), [&](const GroupHold& g) { return g.stream == stream; });
      if (it == t_group.end()) {
        t_group.push_back(GroupHold{stream, capturing, {}});
        it = std::prev(t_group.end());
      }
      it->units.insert(it->units.end(), units.begin(), units.end());
      return;
    } catch (...) {
      // No memory to remember them: hold them for good (never unmapped under NCCL).
      log(LogLevel::kError, "out of memory recording an NCCL group: its ranges stay staged for good");
      return;
    }
  }
  // Outside a group the collective is enqueued on `stream` by now; a failed
  // call enqueued nothing, and an event after nothing completes at once.
  release_held(units, stream, capturing);
}

void Runtime::after_external_wait(CUstream stream) noexcept {
  if (t_group_depth > 0) {
    try {
      t_group_waits.push_back(stream);
      return;
    } catch (...) {
      // no memory to defer it: marked now (found by the patience if too early)
    }
  }
  note_stream_wait(resolve(stream, false));
}

void Runtime::on_group_start() noexcept {
  if (config_.nccl_hooks) ++t_group_depth;
}

void Runtime::on_group_end(ExternalOutcome outcome) noexcept {
  if (!config_.nccl_hooks || t_group_depth == 0) return;
  if (--t_group_depth > 0) return;
  std::vector<GroupHold> group;
  group.swap(t_group);
  std::vector<CUstream> waits;
  waits.swap(t_group_waits);
  if (outcome == ExternalOutcome::kEnqueued)
    for (CUstream w : waits) note_stream_wait(resolve(w, false));
  if (outcome == ExternalOutcome::kPending) {
    std::lock_guard lock(mutex_);
    if (!pending_collective_reported_) {
      pending_collective_reported_ = true;
      log(LogLevel::kError,
          "ncclGroupEnd returned ncclInProgress (nonblocking communicator): the ranges of the group stay staged for good");
    }
    return;
  }
  // Every collective of the group is enqueued on its stream now (NCCL joins
  // the group's streams): an event after it on each covers that stream's work.
  for (auto& g : group) release_held(g.units, g.stream, g.capturing);
}

// ---- registered buffers ---------------------------------------------------------------

int Runtime::external_pins_over(CUdeviceptr begin, CUdeviceptr end) const noexcept {
  int n = 0;
  for (const auto& [owner, range] : external_pins_) {
    if (range.first < end && begin < range.second) ++n;
  }
  return n;
}

// One more pin; a compressed unit is staged first (synchronously on the
// internal stream: NCCL may read it from any stream, or a peer, at any time).
void Runtime::pin_unit_for_library(Allocation&, const std::shared_ptr<Unit>& u) noexcept {
  ++u->pins;
  if (u->state != UnitState::kCompressed) return;
  if (stage(u, internal_.get(), false) != CUDA_SUCCESS) {
    log(LogLevel::kError, "cannot stage range {} a library keeps using (NCCL registration, texture object); it stays compressed", hex(u->begin));
    return;
  }
  driver().base.cuStreamSynchronize(internal_.get());
  u->lru_tick = ++tick_;
  try {
    staged_.push_back(u);
  } catch (...) {
  }
}

// NEUZIP_NCCL=0 switches off NCCL's pins, never a texture's (nothing else
// keeps a textured range mapped).
static bool pins_enabled(PinOwner kind, const Config& config) noexcept {
  return kind == PinOwner::kTextureObject || kind == PinOwner::kModuleGlobal || config.nccl_hooks;
}

void Runtime::pin_external(PinOwner kind, uintptr_t owner, CUdeviceptr ptr, size_t bytes, const char* api) noexcept {
  if (!pins_enabled(kind, config_) || bytes == 0 || ptr + bytes < ptr) return;
  std::lock_guard lock(mutex_);
  RelaxedCaptureScope relaxed;
  pin_external_locked(kind, owner, ptr, bytes, api);
}

void Runtime::pin_external_locked(PinOwner kind, uintptr_t owner, CUdeviceptr ptr, size_t bytes,
                                  const char* api) noexcept {
  const CUdeviceptr end = ptr + bytes;
  try {
    if (!external_pins_.emplace(std::make_pair(kind, owner), std::make_pair(ptr, end)).second) return;
  } catch (...) {
    log(LogLevel::kError, "out of memory recording the {} of {} bytes at {}: not pinned", api, bytes, hex(ptr));
    return;
  }
  for (auto& [base, a] : allocations_) {
    if (a->base >= end || a->base + a->bytes <= ptr) continue;
    for (auto& [begin, u] : a->units) {
      if (u->begin < end && ptr < u->end && !u->dead) pin_unit_for_library(*a, u);
    }
  }
  emit("pin", ptr, bytes, fmt::format("\"api\":\"{}\"", api));
}

void Runtime::unpin_external(PinOwner kind, uintptr_t owner) noexcept {
  if (!pins_enabled(kind, config_)) return;
  if (kind == PinOwner::kTextureObject) {
    {
      std::lock_guard lock(mutex_);
      if (!external_pins_.count(std::make_pair(kind, owner))) return;
    }
    // Kernels that sample it may still be queued on any stream, and none of
    // their uses was recorded (the launch scan saw a handle, not an address):
    // the range may be evicted only once they ran. Texture objects are
    // destroyed rarely; the wait is the program's own context's.
    RelaxedCaptureScope relaxed;
    if (CUresult r = driver().base.cuCtxSynchronize(); r != CUDA_SUCCESS) {
      // Not knowing whether they ran, the range stays pinned for good.
      log(LogLevel::kDebug, "texture object destroyed while the context could not be synchronized ({}): its range "
          "stays pinned", error_name(r));
      return;
    }
  }
  std::lock_guard lock(mutex_);
  unpin_external_locked(kind, owner, kind == PinOwner::kTextureObject ? "texture destroyed" : "deregister");
}

void Runtime::unpin_external_locked(PinOwner kind, uintptr_t owner, const char* why) noexcept {
  auto it = external_pins_.find(std::make_pair(kind, owner));
  if (it == external_pins_.end()) return;
  const auto [ptr, end] = it->second;
  external_pins_.erase(it);
  for (auto& [base, a] : allocations_) {
    if (a->base >= end || a->base + a->bytes <= ptr) continue;
    for (auto& [begin, u] : a->units) {
      // Every live unit over the range took one pin for it (now or when made).
      if (u->begin < end && ptr < u->end && !u->dead && u->pins > 0) --u->pins;
    }
  }
  // They stay staged: the LRU/pressure eviction takes them when it needs to.
  emit("unpin", ptr, end - ptr, fmt::format("\"why\":\"{}\"", why));
}

}  // namespace nz::rt
