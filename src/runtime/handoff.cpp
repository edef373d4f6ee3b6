// handoff.cpp: evictions the device orders (handoff.h): handing a staged run's
// pages over, and settling the handover once its change test ran.
#include "runtime/handoff.h"

#include <algorithm>
#include <cstring>

#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

namespace {
constexpr size_t kFlagsAlign = 256;
}

bool Runtime::handoff_eligible(const Unit& u) const noexcept {
  // The arena, or exact handles (the H200's driver maps whole handles only):
  // then the pages handed over serve the next run of the same size.
  if (!handoffs_enabled_ || !u.run) return false;
  for (const auto& w : u.run->units) {
    auto v = w.lock();
    if (!v || v->run != u.run) continue;
    if (v->dead || v->state != UnitState::kStaged || v->in_flight > 0 || v->pins > 0) return false;
    if (held_elsewhere(*v)) return false;  // its fence could come before the owner's reading launch
    // A use on a stream that waits for later work: the fence would make
    // the next decodes wait for it on the device (patient_wait.cpp).
    if (behind_stall(*v)) return false;
    // Seen unchanged at its last eviction, with the store that says what
    // "unchanged" is; lossy stores describe the lossy decode, not the pages.
    // Never one found changed before (training rewrites its weights: each
    // handover would end in a rescue).
    if (!v->store.data || v->recode || v->rescue || v->ever_changed || v->clean_evictions < 1) return false;
    if (CompressedStore::lossy_for(v->dtype, config_)) return false;
  }
  return true;
}

bool Runtime::hand_over(const std::shared_ptr<Unit>& u) noexcept {
  const std::shared_ptr<StagedRun> run = u->run;
  if (!run || !guard_stream_) return false;
  const auto& api = driver().base;
  std::vector<std::shared_ptr<Unit>> units;
  std::shared_ptr<Handoff> h;
  try {
    for (auto& v : run->alive())
      if (v->run == run) units.push_back(std::move(v));
    if (units.empty()) return false;
    h = std::make_shared<Handoff>();
    const size_t header = (units.size() * sizeof(uint32_t) + kFlagsAlign - 1) / kFlagsAlign * kFlagsAlign;
    reap_kept();  // host memory decodes no longer read
    h->slot = rescue_.take(header + run->bytes());
    if (!h->slot) return false;  // as far ahead as the rescue memory allows: the caller waits instead
    std::memset(h->slot->host(), 0, units.size() * sizeof(uint32_t));
    for (const auto& v : units) {
      h->units.push_back(v);
      h->offsets.push_back(header + static_cast<size_t>(v->begin - run->begin));
    }
  } catch (...) {
    return false;
  }
  const CUstream stream = guard_stream_.get();
  // After every queued use of the run, on any stream.
  for (const auto& v : units) {
    seal_open_use(*v);
    for (const auto& e : v->uses)
      if (e && *e && !event_done(e) && api.cuStreamWaitEvent(stream, e->get(), 0) != CUDA_SUCCESS) return false;
  }
  gpu::DeviceCodec::GuardJob jobs[gpu::DeviceCodec::kMaxGuardBatch];
  for (size_t first = 0; first < units.size(); first += gpu::DeviceCodec::kMaxGuardBatch) {
    const size_t n = std::min(units.size() - first, gpu::DeviceCodec::kMaxGuardBatch);
    for (size_t i = 0; i < n; ++i) {
      const auto& v = units[first + i];
      jobs[i] = {v->begin, v->bytes(), v->store.hash, h->slot->device() + h->offsets[first + i]};
    }
    if (codec_->guard_batch(stream, std::span(jobs, n), h->slot->device() + first * sizeof(uint32_t)) !=
        CUDA_SUCCESS) {
      // Nothing was given up yet; a guard that did run only wrote the slot.
      api.cuStreamSynchronize(stream);
      return false;
    }
  }
  h->done = record_event(stream);
  if (!h->done) {
    api.cuStreamSynchronize(stream);
    return false;
  }
  if (!give_over(h, run, units)) {
    api.cuStreamSynchronize(stream);
    return false;
  }
  emit("handoff", run->begin, run->bytes());
  return true;
}

// The end of a handover whose guard is enqueued (`h->done` recorded): the
// run's pages go back to the pool while its mapping stays until `done`, and
// its units are compressed units with a handover to settle. False (nothing
// given up) if it could not be recorded.
bool Runtime::give_over(const std::shared_ptr<Handoff>& h, const std::shared_ptr<StagedRun>& run,
                        const std::vector<std::shared_ptr<Unit>>& units, bool hold) noexcept {
  try {
    handoffs_.push_back(h);
    if (hold) {
      h->held = std::move(run->memory);
      h->held_bytes = run->bytes();
      held_bytes_ += h->held_bytes;
    } else {
      pool_.give_back_mapped(run->memory, h->mapping);
    }
  } catch (...) {
    if (!handoffs_.empty() && handoffs_.back() == h) handoffs_.pop_back();
    return false;
  }
  h->va = run->begin;
  for (const auto& v : units) {
    v->run.reset();
    v->ready.reset();
    v->clear_uses();
    v->prefetched = false;
    v->state = UnitState::kCompressed;
    v->handoff = h;
    std::erase(staged_, v);
  }
  stats_.handoffs.add(units.size());
  ++memory_epoch_;
  stats_.staging_bytes.set(pool_.in_use_bytes());
  update_saved();
  return true;
}

bool Runtime::settle_handoff(Handoff& h, bool wait) noexcept {
  if (h.settled) return true;
  const auto& api = driver().base;
  if (!event_done(h.done)) {
    if (!wait) return false;
    const auto start = TraceClock::now();
    api.cuEventSynchronize(h.done->get());
    if (!on_stager_thread())
      stats_.hook_wait_ns.add(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(TraceClock::now() - start).count()));
  }
  if (!h.held.empty()) {
    pool_.unmap(h.va, h.held);
    pool_.give_back(h.held);
    held_bytes_ -= std::min(held_bytes_, h.held_bytes);
    stats_.staging_bytes.set(pool_.in_use_bytes());
  } else {
    pool_.unmap_given(h.va, h.mapping);
  }
  const auto* flags = reinterpret_cast<const volatile uint32_t*>(h.slot->host());
  for (size_t i = 0; i < h.units.size(); ++i) {
    auto v = h.units[i].lock();
    if (!v) continue;
    if (v->handoff.get() == &h) v->handoff.reset();
    if (v->dead) continue;
    const uint32_t flag = flags[i];
    if (flag == gpu::DeviceCodec::kGuardStored && h.encoded) {
      settle_encoded(*v, h, i);
      continue;
    }
    if (flag == gpu::DeviceCodec::kGuardUnchanged) {
      ++v->clean_evictions;
      v->change_streak = 0;
      v->changes.note(false, generation_);
      stats_.drops.add();
      emit("drop", v->begin, v->bytes());
      continue;
    }
    if (flag != gpu::DeviceCodec::kGuardRescued) {
      // The guard never ran (the context failed): nothing can be known of the content.
      log(LogLevel::kError, "change test of range {} did not run: its content is lost", hex(v->begin));
      continue;
    }
    // Changed after all (or, for an encode handover, its encoding did not
    // fit): the copy is the data; the store is stale.
    if (h.encoded) stats_.encode_rescues.add();
    v->rescue = h.slot;
    v->rescue_offset = h.offsets[i];
    v->clean_evictions = 0;
    v->ever_changed = true;
    ++v->change_streak;
    v->changes.note(true, generation_);
    stats_.rescues.add();
    emit("rescue", v->begin, v->bytes());
    log(LogLevel::kDebug, "range {} changed after it was handed over: restored from host memory at its next use",
        hex(v->begin));
  }
  h.slot.reset();      // kept by the units it rescued
  h.encodings.clear();  // the encodings no unit adopted (unchanged, rescued, freed meanwhile)
  encode_handoff_bytes_ -= std::min(encode_handoff_bytes_, h.encoded_bytes);
  h.settled = true;
  return true;
}

void Runtime::reap_handoffs(bool wait) noexcept {
  // One guard stream: they complete in order.
  while (!handoffs_.empty()) {
    if (!settle_handoff(*handoffs_.front(), wait)) break;
    handoffs_.pop_front();
  }
}

bool Runtime::settle_handoff_of(Unit& u) noexcept {
  if (!u.handoff) return false;
  settle_handoff(*u.handoff, true);
  return true;
}

void Runtime::settle_handoffs_of(const std::vector<std::shared_ptr<Unit>>& units) noexcept {
  bool any = false;
  for (const auto& u : units) any |= settle_handoff_of(*u);
  if (any) reap_handoffs(false);
}

void Runtime::settle_handoffs_of(Allocation& a) noexcept {
  bool any = false;
  for (const auto& [begin, u] : a.units) any |= settle_handoff_of(*u);
  if (any) reap_handoffs(false);
}

SharedEvent Runtime::handoff_fence() noexcept {
  // In order on one stream: the newest unsettled handover's event covers all
  // (but those that kept their pages: nothing is decoded into those).
  for (auto it = handoffs_.rbegin(); it != handoffs_.rend(); ++it) {
    if (!(*it)->settled && (*it)->held.empty()) return event_done((*it)->done) ? nullptr : (*it)->done;
  }
  return nullptr;
}

}  // namespace nz::rt
