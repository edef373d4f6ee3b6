// runtime_internal.h: constants and small helpers shared by the files that
// implement Runtime (runtime.cpp, tagging.cpp, stager.cpp, staging_runs.cpp,
// guesses.cpp, eviction.cpp, diagnostics.cpp). Not part of any interface.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/driver_objects.h"

namespace nz::rt::detail {

constexpr int kChangesBeforeResident = 3;  // changed at this many evictions in a row: stop compressing
// Largest unit (or one page where pages are larger): bounds the scratch a
// compression needs (a bound-sized output buffer, and the reserve kept for it
// under pressure) and the memory one staging step takes, which matters most
// when memory is short. Large weights become several units, all staged when
// one is touched. 2 MiB (one page of the usual granularity): training on a
// device 1 MiB smaller than it needs fits with 2 MiB units, not with 4 MiB
// (docs/RUNTIME.md, "Training on a small device").
constexpr size_t kMaxUnitBytes = size_t{2} << 20;
constexpr int kCompressAttempts = 64;  // no memory for the scratch: retry after memory was freed

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

// Waits for all work queued in `ctx`, from any thread and whatever context it
// has current (a free or an IPC close must not unmap pages queued kernels
// still read). False when it could not (a destroyed context, a sticky error).
inline bool synchronize_context(CUcontext ctx) noexcept {
  const auto& api = driver().base;
  if (ctx == nullptr) return false;
  CUcontext current = nullptr;
  api.cuCtxGetCurrent(&current);
  if (current == ctx) return api.cuCtxSynchronize() == CUDA_SUCCESS;
  if (api.cuCtxSetCurrent(ctx) != CUDA_SUCCESS) return false;
  const bool ok = api.cuCtxSynchronize() == CUDA_SUCCESS;
  api.cuCtxSetCurrent(current);
  return ok;
}

// A hook called from another context (another device reading or copying
// the memory the runtime serves): the runtime's kernels, streams and events
// belong to its own context, which is made current for the hook's work and
// the caller's restored after.
// t_foreign_call tells staging to decode on the runtime's stream (a program
// stream of another context cannot run the runtime's kernels) and order the
// program's stream after it with an event.
inline thread_local bool t_foreign_call = false;
inline thread_local CUcontext t_callers_context = nullptr;
class ContextBinding {
 public:
  explicit ContextBinding(CUcontext ours) {
    if (ours == nullptr || driver().base.cuCtxGetCurrent(&previous_) != CUDA_SUCCESS || previous_ == ours) return;
    switched_ = driver().base.cuCtxSetCurrent(ours) == CUDA_SUCCESS;
    if (!switched_) return;
    outer_ = t_foreign_call;
    outer_callers_ = t_callers_context;
    t_foreign_call = true;
    t_callers_context = previous_;
  }
  ~ContextBinding() {
    if (!switched_) return;
    driver().base.cuCtxSetCurrent(previous_);
    t_foreign_call = outer_;
    t_callers_context = outer_callers_;
  }
  ContextBinding(const ContextBinding&) = delete;
  ContextBinding& operator=(const ContextBinding&) = delete;

 private:
  CUcontext previous_ = nullptr;
  bool switched_ = false;
  bool outer_ = false;
  CUcontext outer_callers_ = nullptr;
};

// Runs `f` (an operation on the caller's stream) with the caller's context
// current again inside a ContextBinding: the special stream handles (0,
// CU_STREAM_LEGACY, CU_STREAM_PER_THREAD) name the current context's stream.
template <typename F>
auto on_callers_context(F&& f) {
  if (!t_foreign_call) return f();
  CUcontext ours = nullptr;
  driver().base.cuCtxGetCurrent(&ours);
  driver().base.cuCtxSetCurrent(t_callers_context);
  struct Back {
    CUcontext ours;
    ~Back() { driver().base.cuCtxSetCurrent(ours); }
  } back{ours};
  return f();
}

// Whether `s`, a program's stream, belongs to another context than the
// runtime's `ours` inside a ContextBinding: the special handles name the
// caller's context's streams; another handle names its own.
inline bool callers_stream_elsewhere(CUstream s, CUcontext ours) {
  if (!t_foreign_call) return false;
  if (s == nullptr || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) return true;
  CUcontext c = nullptr;
  return driver().cuStreamGetCtx == nullptr || driver().cuStreamGetCtx(s, &c) != CUDA_SUCCESS || c != ours;
}

inline bool stream_capturing(CUstream s) {
  const auto& api = driver();
  if (api.cuStreamIsCapturing == nullptr) return false;
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  if (api.cuStreamIsCapturing(s, &status) != CUDA_SUCCESS) return false;
  return status == CU_STREAM_CAPTURE_STATUS_ACTIVE;
}

// The sequence id of the capture `s` takes part in (0: none, or unknown):
// every stream that joined a capture shares its origin's id.
inline uint64_t capture_sequence_id(CUstream s) {
  const auto& api = driver();
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  cuuint64_t id = 0;
  CUresult r = CUDA_ERROR_NOT_SUPPORTED;
  if (api.capture_info_v3 != nullptr)
    r = api.capture_info_v3(s, &status, &id, nullptr, nullptr, nullptr, nullptr);
  else if (api.capture_info_v1 != nullptr)
    r = api.capture_info_v1(s, &status, &id);
  return r == CUDA_SUCCESS && status == CU_STREAM_CAPTURE_STATUS_ACTIVE ? id : 0;
}

// The key of a capture's record (GraphPins) for a capture on `s`: the
// stream's handle, except for the per-thread default stream, one handle
// naming a different stream in every thread: two threads capturing on theirs
// at once would share one record (the second begin dropped the first's
// bookkeeping, leaving its ranges pinned for good). There the key is an
// address of the calling thread's own; a per-thread stream is only ever
// captured, launched into and ended from its thread. (graph_hooks.cpp)
CUstream capture_record_key(CUstream s) noexcept;

inline std::string hex(uint64_t v) { return fmt::format("{:#x}", v); }

}  // namespace nz::rt::detail

namespace nz::rt {
struct Unit;
// Whether the calling thread is the look-ahead stager (lookahead.cpp).
bool on_stager_thread() noexcept;
// Splits compressed units into runs of VA-contiguous ones (staging_runs.cpp).
std::vector<std::vector<std::shared_ptr<Unit>>> runs_of(std::vector<std::shared_ptr<Unit>> units);
}  // namespace nz::rt

namespace nz::rt::detail {

}  // namespace nz::rt::detail
