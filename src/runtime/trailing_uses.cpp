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
// So the units of a stream's last tracked call stay in use on that stream
// until its next tracked call: that call's use covers them too (the
// launches between them are queued before it), and an eviction of one
// before then first records an event on the stream (a seal: after
// everything queued there so far) and waits for it as for any use — on the
// host, or on the device for a handover; one that may not wait takes it only
// once the stream ran dry. One event per sealed unit; nothing at all on the
// launch path of a call that touches no tracked range. Not covered: such a
// read queued after the stream's next tracked call, or on another stream.
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

void Runtime::note_tracked_call_locked(const std::vector<std::shared_ptr<Unit>>& units, CUstream stream,
                                       const SharedEvent& done, bool own_legacy) noexcept {
  // A destroyed stream's handle may name another stream now: forget them all.
  if (const uint64_t epoch = stream_destroy_epoch(); epoch != open_calls_epoch_) {
    open_calls_.clear();
    open_calls_epoch_ = epoch;
  }
  try {
    OpenCalls& c = open_calls_[stream];
    for (const auto& w : c.units) {
      auto v = w.lock();
      if (!v || !v->open || v->open_on != stream || v->open_seq != c.seq) continue;
      v->add_use(done, stream, own_legacy);  // after this call: after whatever came between too
      v->open = false;
    }
    c.units.clear();
    ++c.seq;
    const uint64_t launches = stats_.launches_seen.get();
    for (const auto& u : units) {
      u->open = true;
      u->open_on = stream;
      u->open_seq = c.seq;
      u->open_launches = launches;
      c.units.push_back(u);
    }
  } catch (...) {
    // No memory to remember them: their uses end with this call, as before.
    for (const auto& u : units) u->open = false;
  }
}

bool Runtime::use_open(const Unit& u) const noexcept {
  if (!u.open || stream_destroy_epoch() != open_calls_epoch_) return false;
  auto it = open_calls_.find(u.open_on);
  return it != open_calls_.end() && it->second.seq == u.open_seq;
}

// Open, with a launch since its call that may read it: not when the only one
// is the launch this thread is making on the same stream (the next tracked
// call: its use will be recorded after it). Launches are counted; copies and
// memsets read no pointers.
bool Runtime::trailing_window(const Unit& u) const noexcept {
  if (!use_open(u)) return false;
  const uint64_t since = stats_.launches_seen.get() - u.open_launches;
  return since > 1 || (since == 1 && !launching_on(u.open_on));
}

bool Runtime::trailing_busy(const Unit& u) const noexcept {
  if (!trailing_window(u)) return false;
  // (Only NOT_READY is work still queued: a capturing stream runs nothing.)
  if (driver().cuStreamQuery == nullptr) return true;  // (every driver has it) not known: busy
  return driver().cuStreamQuery(u.open_on) == CUDA_ERROR_NOT_READY;
}

void Runtime::seal_open_use(Unit& u) noexcept {
  if (!trailing_window(u)) return;
  const CUstream s = u.open_on;
  // A capture records nodes, not work: its graph's replays are pinned.
  if (detail::stream_capturing(s)) return;
  // A fresh event every time: it replaces the unit's older use on the stream
  // (add_use keeps one per stream), so it must come after all of them — an
  // event kept from an earlier seal could precede a copy or a graph replay
  // queued since, and the eviction would not wait for it.
  if (SharedEvent seal = record_event(s)) u.add_use(std::move(seal), s);
}

}  // namespace nz::rt
