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
// eviction of one before then first records an event on the stream (a seal:
// after everything queued there so far) and waits for it as for any use —
// on the host, or on the device for a handover; one that may not wait takes
// it only once the stream ran dry. A seal is needed only once the owner has
// queued a launch since its call: each thread counts the launches it queued
// (LaunchingThread, counted after the driver accepted each). Another thread
// (a second launching thread, the look-ahead stager) cannot seal before the
// owner queued anything since: the read may be the owner's next launch, not
// queued yet. So it leaves such a unit alone (held_elsewhere) until the
// owner queues a launch or exits, or for kOpenHoldNs at most. The same
// thread's unforced compression at the start of a hook leaves what its own
// last calls used (the call being made may be the read). Keyed by thread as
// well as stream: another thread's call on a shared stream (the legacy one)
// is queued before the owner's read and closes nothing; a unit keeps one
// open use per thread and stream (Unit::opens), and a thread's tracked call
// on another stream seals and ends its open uses of the same units (what it
// queued on the first stream is queued by then). Open uses of threads that
// exited are sealed and swept. One event per sealed unit; nothing at all on
// the launch path of a call that touches no tracked range but a counter of
// the thread's own. Not covered: such a read queued after the thread's next
// tracked call on that stream or on another stream that uses the same range,
// by another thread, or by a launch that itself names a tracked range (then
// it is the next tracked call, and its own staging may evict what the setup
// call used before the read is queued).
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

#include <algorithm>
#include <atomic>
#include <chrono>

namespace nz::rt {

// What other threads read of a launching thread: its token, and how many
// launches it has queued (counted once the driver accepted each, so that a
// count seen by another thread means the launch is queued ahead of anything
// that thread records on the stream afterwards).
struct LaunchingThread {
  uint64_t token = 0;
  std::atomic<uint64_t> launches{0};
  std::atomic<bool> exited{false};  // everything it launched is queued (threads made per call: minifw --threads)
};

namespace {

// Long enough for any launch that follows its setup kernel, short enough that
// an idle thread's last call does not keep its ranges from other threads for
// long (only until that thread launches anything else).
constexpr int64_t kOpenHoldNs = 1'000'000'000;

struct ThreadRecord {
  ThreadRecord() : state(std::make_shared<LaunchingThread>()) {
    static std::atomic<uint64_t> next{1};
    state->token = next.fetch_add(1, std::memory_order_relaxed);
  }
  ~ThreadRecord() { state->exited.store(true, std::memory_order_release); }
  std::shared_ptr<LaunchingThread> state;
};

const std::shared_ptr<LaunchingThread>& this_thread_state() {
  thread_local const ThreadRecord record;
  return record.state;
}

bool exited(const Unit::OpenUse& o) noexcept { return o.owner->exited.load(std::memory_order_acquire); }

// The per-thread default stream: one handle, another stream in each thread.
// Another thread can neither record on nor query the owner's.
bool thread_bound(CUstream s) noexcept { return s == CU_STREAM_PER_THREAD; }

// 0 (no thread's: held from, never owner) if the thread's record could not be made.
uint64_t this_thread_token() noexcept {
  try {
    return this_thread_state()->token;
  } catch (...) {
    return 0;
  }
}

int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Launches the owner queued since its call (its later calls included).
uint64_t launches_since(const Unit::OpenUse& o) noexcept {
  return o.owner->launches.load(std::memory_order_acquire) - o.owner_launches;
}

}  // namespace

void Runtime::note_launch_queued() noexcept {
  try {
    this_thread_state()->launches.fetch_add(1, std::memory_order_release);
  } catch (...) {
    // (no memory for the thread's record: it opens nothing either)
  }
}

void Runtime::note_tracked_call_locked(const std::vector<std::shared_ptr<Unit>>& units, CUstream stream,
                                       const SharedEvent& done, bool own_legacy) noexcept {
  // A destroyed stream's handle may name another stream now: forget them all.
  if (const uint64_t epoch = stream_destroy_epoch(); epoch != open_calls_epoch_) {
    open_calls_.clear();
    open_calls_epoch_ = epoch;
  }
  const std::shared_ptr<LaunchingThread>* me = nullptr;
  try {
    me = &this_thread_state();
  } catch (...) {
    return;  // (no memory for the thread's record: uses end with their calls, as before)
  }
  const uint64_t thread = (*me)->token;
  if (open_calls_.size() > open_calls_sweep_at_) sweep_exited_threads_locked();
  auto same_key = [&](const Unit::OpenUse& o) { return o.stream == stream && o.owner->token == thread; };
  try {
    OpenCalls& c = open_calls_[OpenKey{stream, thread}];
    if (!c.owner) c.owner = *me;
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
    const uint64_t queued = (*me)->launches.load(std::memory_order_relaxed);
    // This thread's open uses of these units on other streams: what it
    // queued there since is queued now, before this call returns; a seal
    // recorded now covers it, and the open use goes (else a stream it stops
    // using would make every later eviction seal on it: the legacy stream of
    // a loader's copies, behind all blocking streams). One seal per stream.
    std::vector<std::pair<CUstream, SharedEvent>> seals;
    for (const auto& u : units) {
      for (const auto& o : u->opens) {
        if (o.owner->token != thread || o.stream == stream || !use_open(o)) continue;
        if (queued <= o.owner_launches) continue;  // nothing since (this call, if a launch, may be one)
        if (detail::stream_capturing(o.stream)) continue;  // its graph's replays are pinned
        auto it = std::find_if(seals.begin(), seals.end(), [&](const auto& p) { return p.first == o.stream; });
        if (it == seals.end()) it = seals.insert(seals.end(), {o.stream, record_event(o.stream)});
        if (it->second) u->add_use(it->second, o.stream);
      }
      std::erase_if(u->opens, [&](const Unit::OpenUse& o) { return o.owner->token == thread; });
    }
    const Unit::OpenUse open{stream, *me, c.seq, queued, steady_ns()};
    for (const auto& u : units) {
      u->opens.push_back(open);
      c.units.push_back(u);
    }
  } catch (...) {
    // No memory to remember them: their uses end with this call, as before.
    for (const auto& u : units) std::erase_if(u->opens, same_key);
  }
}

// Threads that exited queued all they ever will: their open uses end with a
// seal (after all they queued), and their records go (a program that starts a
// thread per call would otherwise grow the map without end).
void Runtime::sweep_exited_threads_locked() noexcept {
  for (auto it = open_calls_.begin(); it != open_calls_.end();) {
    OpenCalls& c = it->second;
    if (!c.owner || !c.owner->exited.load(std::memory_order_acquire)) {
      ++it;
      continue;
    }
    const CUstream stream = it->first.stream;
    const uint64_t token = it->first.thread;
    if (thread_bound(stream)) {
      // Its per-thread stream is not ours to record on: kept until the hold ended.
      const int64_t now = steady_ns();
      bool recent = false;
      for (const auto& w : c.units)
        if (auto v = w.lock())
          for (const auto& o : v->opens)
            if (o.stream == stream && o.owner->token == token && now - o.ns < kOpenHoldNs) recent = true;
      if (recent) {
        ++it;
        continue;
      }
    }
    SharedEvent seal;
    bool sealed = false;
    for (const auto& w : c.units) {
      auto v = w.lock();
      if (!v) continue;
      for (const auto& o : v->opens) {
        if (o.stream != stream || o.owner->token != token || o.seq != c.seq || launches_since(o) == 0) continue;
        if (!sealed && !thread_bound(stream) && !detail::stream_capturing(stream)) seal = record_event(stream);
        sealed = true;
        if (seal) v->add_use(seal, stream);
      }
      std::erase_if(v->opens, [&](const Unit::OpenUse& o) { return o.stream == stream && o.owner->token == token; });
    }
    it = open_calls_.erase(it);
  }
  open_calls_sweep_at_ = std::max<size_t>(64, 2 * open_calls_.size());
}

bool Runtime::use_open(const Unit::OpenUse& o) const noexcept {
  if (stream_destroy_epoch() != open_calls_epoch_) return false;
  auto it = open_calls_.find(OpenKey{o.stream, o.owner->token});
  return it != open_calls_.end() && it->second.seq == o.seq;
}

// Another thread's, which has queued nothing since its call (the read may be
// its next launch), recently.
bool Runtime::held_elsewhere(const Unit& u) const noexcept {
  if (u.opens.empty()) return false;
  const uint64_t me = this_thread_token();
  const int64_t now = steady_ns();
  for (const auto& o : u.opens) {
    if (o.owner->token == me || now - o.ns >= kOpenHoldNs || !use_open(o)) continue;
    // On its per-thread stream no seal of ours would follow its read: held
    // whatever it did since, until its next call there or the hold ends.
    if (thread_bound(o.stream) || (launches_since(o) == 0 && !exited(o))) return true;
  }
  return false;
}

bool Runtime::opened_here_recently(const Unit& u) const noexcept {
  if (u.opens.empty()) return false;
  const uint64_t me = this_thread_token();
  const int64_t now = steady_ns();
  for (const auto& o : u.opens)
    if (o.owner->token == me && now - o.ns < kOpenHoldNs && use_open(o)) return true;
  return false;
}

// Open, and its owner queued a launch since that may read it (counted once
// queued: the launch this thread is making now is not, and if it is the
// stream's next tracked call its use is recorded after it).
bool Runtime::trailing_window(const Unit::OpenUse& o) const noexcept {
  return use_open(o) && launches_since(o) > 0;
}

bool Runtime::trailing_busy(const Unit& u) const noexcept {
  const uint64_t me = this_thread_token();
  for (const auto& o : u.opens) {
    if (!trailing_window(o)) continue;
    if (thread_bound(o.stream) && o.owner->token != me) continue;  // (held until the hold ended: not ours to ask)
    // (Only NOT_READY is work still queued: a capturing stream runs nothing.)
    if (driver().cuStreamQuery == nullptr) return true;  // (every driver has it) not known: busy
    if (driver().cuStreamQuery(o.stream) == CUDA_ERROR_NOT_READY) return true;
  }
  return false;
}

void Runtime::seal_open_use(Unit& u) noexcept {
  const uint64_t me = this_thread_token();
  for (const auto& o : u.opens) {
    if (!trailing_window(o)) continue;
    const CUstream s = o.stream;
    if (thread_bound(s) && o.owner->token != me) continue;  // another thread's (held until the hold ended)
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
