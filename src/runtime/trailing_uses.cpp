// trailing_uses.cpp: a weight read through pointers a kernel wrote.
//
// A use is recorded after each call whose parameters reach a tracked range,
// and an eviction waits for it. But a kernel can build pointers on the
// device from the ones it was given, and a later launch read through them
// with parameters that name no weight: a grouped GEMM's setup kernel writes
// its operand arrays from the weights' base pointers, and the GEMM reads
// the weights through those arrays (PyTorch's _grouped_mm for MoE layers,
// TensorRT-LLM's and MLX's grouped GEMMs; a TMA descriptor built on the
// device likewise). Waiting for the setup kernel alone, an eviction unmapped
// the weights before the GEMM queued after it ran: an illegal address.
//
// So the units of a thread's last tracked call on a stream stay in use on
// that stream until the same thread's next tracked call there: that call's
// use covers them too (the launches between them are queued before it). An
// eviction of one before then by the thread that made the call first records
// an event on the stream (a seal: after everything that thread queued there
// so far) and waits for it as for any use — on the host, or on the device for
// a handover; one that may not wait takes it only once the stream ran dry.
// Another thread (a second launching thread, the look-ahead stager) cannot
// know whether the owner has queued its reading launch yet: a seal it records
// could come before that launch. So it leaves such a unit alone for
// kOpenHoldNs after the call (held_elsewhere: a launch follows its setup
// kernel within microseconds); after that, it seals and waits as the owner
// would. Keyed by thread as well as stream: another thread's call on a shared
// stream (the legacy one) is queued before the owner's reading launch and
// closes nothing. A unit keeps one such open use per thread and stream
// (Unit::opens): a later call on another stream, or by another thread, must
// not make it forget a read queued after the first. One event per sealed unit; nothing at all on the launch
// path of a call that touches no tracked range. Not covered: such a read
// queued after the thread's next tracked call on that stream, on another
// stream, by another thread, or more than kOpenHoldNs after the setup call
// while another thread evicts.
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

#include <atomic>
#include <chrono>

namespace nz::rt {

namespace {

// Long enough for any launch that follows its setup kernel, short enough that
// an idle thread's last call does not keep its ranges from other threads.
constexpr int64_t kOpenHoldNs = 1'000'000'000;

// A small number per thread, cheaper than hashing std::thread::id.
uint64_t this_thread_token() noexcept {
  static std::atomic<uint64_t> next{1};
  thread_local const uint64_t token = next.fetch_add(1, std::memory_order_relaxed);
  return token;
}

int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Runtime::note_tracked_call_locked(const std::vector<std::shared_ptr<Unit>>& units, CUstream stream,
                                       const SharedEvent& done, bool own_legacy) noexcept {
  // A destroyed stream's handle may name another stream now: forget them all.
  if (const uint64_t epoch = stream_destroy_epoch(); epoch != open_calls_epoch_) {
    open_calls_.clear();
    open_calls_epoch_ = epoch;
  }
  const uint64_t thread = this_thread_token();
  auto same_key = [&](const Unit::OpenUse& o) { return o.stream == stream && o.thread == thread; };
  try {
    OpenCalls& c = open_calls_[OpenKey{stream, thread}];
    for (const auto& w : c.units) {
      auto v = w.lock();
      if (!v) continue;
      for (const auto& o : v->opens) {
        // After this call: after whatever this thread queued there between too.
        if (same_key(o) && o.seq == c.seq) v->add_use(done, stream, own_legacy);
      }
      std::erase_if(v->opens, same_key);
    }
    c.units.clear();
    ++c.seq;
    const Unit::OpenUse open{stream, thread, c.seq, stats_.launches_seen.get(), steady_ns()};
    for (const auto& u : units) {
      std::erase_if(u->opens, same_key);  // (one left from before a stream's destruction)
      u->opens.push_back(open);
      c.units.push_back(u);
    }
  } catch (...) {
    // No memory to remember them: their uses end with this call, as before.
    for (const auto& u : units) std::erase_if(u->opens, same_key);
  }
}

bool Runtime::use_open(const Unit::OpenUse& o) const noexcept {
  if (stream_destroy_epoch() != open_calls_epoch_) return false;
  auto it = open_calls_.find(OpenKey{o.stream, o.thread});
  return it != open_calls_.end() && it->second.seq == o.seq;
}

bool Runtime::held_elsewhere(const Unit& u) const noexcept {
  if (u.opens.empty()) return false;
  const uint64_t me = this_thread_token();
  const int64_t now = steady_ns();
  for (const auto& o : u.opens)
    if (o.thread != me && now - o.ns < kOpenHoldNs && use_open(o)) return true;
  return false;
}

bool Runtime::opened_here_recently(const Unit& u) const noexcept {
  if (u.opens.empty()) return false;
  const uint64_t me = this_thread_token();
  const int64_t now = steady_ns();
  for (const auto& o : u.opens)
    if (o.thread == me && now - o.ns < kOpenHoldNs && use_open(o)) return true;
  return false;
}

// Open, with a launch since its call that may read it: not when the only one
// is the launch this thread is making on the same stream (the next tracked
// call: its use will be recorded after it). Launches are counted; copies and
// memsets read no pointers.
bool Runtime::trailing_window(const Unit::OpenUse& o) const noexcept {
  if (!use_open(o)) return false;
  const uint64_t since = stats_.launches_seen.get() - o.launches;
  return since > 1 || (since == 1 && !(o.thread == this_thread_token() && launching_on(o.stream)));
}

bool Runtime::trailing_busy(const Unit& u) const noexcept {
  for (const auto& o : u.opens) {
    if (!trailing_window(o)) continue;
    // (Only NOT_READY is work still queued: a capturing stream runs nothing.)
    if (driver().cuStreamQuery == nullptr) return true;  // (every driver has it) not known: busy
    if (driver().cuStreamQuery(o.stream) == CUDA_ERROR_NOT_READY) return true;
  }
  return false;
}

void Runtime::seal_open_use(Unit& u) noexcept {
  for (const auto& o : u.opens) {
    if (!trailing_window(o)) continue;
    const CUstream s = o.stream;
    // A capture records nodes, not work: its graph's replays are pinned.
    if (detail::stream_capturing(s)) continue;
    // A fresh event every time: it replaces the unit's older use on the
    // stream (add_use keeps one per stream), so it must come after all of
    // them — an event kept from an earlier seal could precede a copy or a
    // graph replay queued since, and the eviction would not wait for it.
    if (SharedEvent seal = record_event(s)) u.add_use(std::move(seal), s);
  }
}

}  // namespace nz::rt
