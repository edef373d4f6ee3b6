// stager.cpp: launch/copy hooks: find the units a call touches, stage
// (map + decode on the caller's stream) the compressed ones, record the
// event after their use; TMA descriptors. How runs are staged:
// staging_runs.cpp; graphs: graph_hooks.cpp; guesses: guesses.cpp.
#include "runtime/runtime.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

namespace {

// Units a launch or copy on this thread touched, between before_ and after_,
// and whether its stream was capturing then (no event to record after it).
thread_local std::vector<std::shared_ptr<Unit>> t_touched;
// The unit lists already collected for the call, and from which index (many
// words point into one allocation).
thread_local std::vector<std::pair<const void*, size_t>> t_extents;
thread_local bool t_touched_capturing = false;
// Whether collect_overlapping added units (then t_touched may hold a unit twice).
thread_local bool t_overlapping = false;
// The launch being prepared on this thread, named in the trace's fault events.
thread_local const LaunchDesc* t_launch = nullptr;

// The kernel's name as the driver knows it (tracing only: a driver call).
std::string kernel_name(const LaunchDesc* d) {
  if (d == nullptr) return "";
  const auto& api = driver();
  const char* name = nullptr;
  if (d->kernel != nullptr && api.cuKernelGetName != nullptr) api.cuKernelGetName(&name, d->kernel);
  if (name == nullptr && d->func != nullptr && api.cuFuncGetName != nullptr) api.cuFuncGetName(&name, d->func);
  return name != nullptr ? std::string(name) : std::string("?");
}

}  // namespace


CUresult Runtime::prepare(std::vector<std::shared_ptr<Unit>>& touched, CUstream stream, bool capturing,
                          const char* what, CUstream pins_to) noexcept {
  const auto asked = TraceClock::now();
  std::lock_guard lock(mutex_);
  const auto locked = TraceClock::now();
  stats_.hook_lock_ns.add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(locked - asked).count()));
  // Our VMM calls and waits must not invalidate a global-mode capture that
  // another stream (of this thread or another) is recording, whether or not
  // this call's own stream captures. Taken only before the first driver call:
  // in the steady state (everything staged and decoded) there is none, and
  // entering and leaving the mode were two driver calls on every launch.
  // So too the runtime's context, for a call from another device's context
  // (detail::ContextBinding): bound with the first driver call, not before.
  std::optional<RelaxedCaptureScope> relaxed;
  std::optional<ContextBinding> bound;
  auto relax = [&] {
    if (relaxed) return;
    relaxed.emplace();
    bound.emplace(context_);
  };
  bool faulted = false;
  CUresult result = CUDA_SUCCESS;
  forecast_.on_call();
  // Hold every unit of this call first (so making room never evicts one of
  // them), then make room for the ones to stage, then stage.
  // Units the look-ahead stager is mapping right now: wait for it (it holds
  // them; the decode it enqueued is then waited for on the stream, below).
  if (stager_busy_ > 0 || !to_settle_.empty()) {
    stager_cv_.wait(mutex_, [&] {
      return std::none_of(touched.begin(), touched.end(), [](const auto& u) { return u->incoming; });
    });
    stats_.hook_stager_ns.add(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(TraceClock::now() - locked).count()));
  }
  if (!handoffs_.empty()) {
    relax();
    reap_handoffs(false);
  }
  size_t incoming = 0;
  for (auto& u : touched) {
    ++u->in_flight;
    if (!u->dead && u->state == UnitState::kCompressed) incoming += u->bytes();
  }
  launch_staging_peak_ = std::max(launch_staging_peak_, incoming);
  if (config_.staging_bytes && incoming > *config_.staging_bytes && !budget_hint_given_) {
    // Staged all at once it must be, so the budget is exceeded while it runs;
    // a budget this tight also leaves nothing to stage ahead with (a 64 MiB
    // budget for a model with 62.5 MiB tensors ran 3.7x slower on the H200).
    budget_hint_given_ = true;
    log(LogLevel::kError,
        "one call needs {} MiB staged at once, more than NEUZIP_STAGING_MB={}: the budget is exceeded while it "
        "runs; at least {} MiB would let staging run ahead of the calls",
        (incoming + (1u << 20) - 1) >> 20, *config_.staging_bytes >> 20, 2 * ((incoming + (1u << 20) - 1) >> 20));
  }
  // Everything this call needs that is compressed is staged at once: runs of
  // contiguous units, one mapping each, one decode launch for all of them.
  std::vector<std::shared_ptr<Unit>> staged_now;
  std::vector<const Unit*> listed;  // staged_now's units already in staged_
  if (incoming > 0) {
    relax();
    enforce_budget(incoming, true);
    try {
      for (auto& u : touched)
        if (!u->dead && u->state == UnitState::kCompressed) staged_now.push_back(u);
      if (config_.staging_bytes && !capturing &&
          pool_.in_use_bytes() + incoming > *config_.staging_bytes + deferred_bytes_ + held_bytes_)
        decode_from_host_copies(touched);
      // All or nothing: on failure none of them is staged. Short of memory
      // (adaptive budget), one unit per run: each staged unit's store can go
      // back before the next needs its pages, and an eviction can encode a
      // changed unit after unmapping it (see settle()).
      // So too past a fixed budget (issue 13): a run mapped whole would hold
      // all its stores and all its pages at once, above what was asked for.
      const bool batch = config_.staging_bytes ? incoming <= *config_.staging_bytes : memory_plentiful();
      CUresult r = batch ? stage_runs(runs_of(staged_now), stream, capturing) : CUDA_ERROR_OUT_OF_MEMORY;
      if (r == CUDA_ERROR_OUT_OF_MEMORY) {
        // Short of memory: one unit at a time, as each staged unit's store
        // can go back before the next one needs its pages.
        r = CUDA_SUCCESS;
        // Past a fixed budget the call as a whole is over it: every unit's
        // store goes, the first ones' too (they fit when they were staged).
        call_over_budget_ = config_.staging_bytes && incoming > *config_.staging_bytes;
        // Ranges of the call staged before it give their stores up as well:
        // they are held with the rest for the whole call (lora's peak held
        // one such store beside a 9-unit window).
        if (call_over_budget_ && !capturing) {
          for (auto& u : touched)
            if (!u->dead && u->state == UnitState::kStaged && u->store.data) release_store_if_pressed(*u, false);
        }
        for (auto& u : staged_now) {
          if (u->state == UnitState::kCompressed && (r = stage(u, stream, capturing)) != CUDA_SUCCESS) break;
          // Listed as staged at once: the last resorts of the next unit's
          // staging (give_up_staged_stores) then take this one's store too.
          // (Listed only after the loop, the call's first units kept their
          // stores while a later one found no memory: a launch failed with
          // out-of-memory on a device that held 3.7 MB of such stores,
          // two programs on a 32 MiB device, docs/RESULTS.md §4.9.13.)
          if (u->state == UnitState::kStaged) {
            try {
              staged_.push_back(u);
              listed.push_back(u.get());
            } catch (...) {
            }
          }
        }
        call_over_budget_ = false;
        if (r != CUDA_SUCCESS) {
          std::erase_if(staged_now, [](const auto& u) { return u->state != UnitState::kStaged; });
          result = r;
        }
      } else if (r != CUDA_SUCCESS) {
        result = r;
        staged_now.clear();
      }
    } catch (...) {
      result = CUDA_ERROR_OUT_OF_MEMORY;
      staged_now.clear();
    }
    faulted = !staged_now.empty();
    stats_.stagings_on_launch.add(staged_now.size());
    std::shared_ptr<Unit> last;
    for (auto& u : staged_now) {
      try {
        if (std::find(listed.begin(), listed.end(), u.get()) == listed.end()) staged_.push_back(u);
        if (!capturing) u->next_guess = order_.record(u);
      } catch (...) {
      }
      last = u;
    }
    if (last && !capturing) request_lookahead(last);
  }
  std::sort(staged_now.begin(), staged_now.end());
  bool asked_ahead = !staged_now.empty();  // request_lookahead(last) above
  bool capture_id_asked = false;
  uint64_t capture_id = 0;
  // Uses are recorded for the launching thread's guesses only (guesses.cpp).
  const bool record_uses = !capturing && (lookahead_window() == 0 || stager_failed_);
  std::shared_ptr<Unit> last_staged;        // the last unit of this call found staged
  for (auto& u : touched) {
    if (u->dead) continue;
    const bool just_staged = std::binary_search(staged_now.begin(), staged_now.end(), u);
    if (u->state == UnitState::kStaged) last_staged = u;
    if (u->state == UnitState::kStaged && !just_staged) {
      // Prefetched, or staged by another stream moments ago: its decode may
      // still be running.
      if (u->ready) relax();
      wait_for_decode(*u, stream, capturing);
      if (u->prefetched) {
        // The guess was right: the order goes on from here (it is learned
        // from uses), and the stager keeps its window ahead of this use.
        u->prefetched = false;
        stats_.prefetch_hits.add();
        if (!capturing) {
          // The order is learned from uses: a range staged ahead is recorded
          // now, not when it was staged. (Recorded at the prefetch, a guess
          // skipped once — its range's handover not settled yet — put the
          // weight after it first in the order, that weight was guessed
          // first the next time, and the skipped one staged on its launch
          // again: at every iteration, for good.)
          try {
            u->next_guess = order_.record(u);
          } catch (...) {
          }
          request_lookahead(u);
          asked_ahead = true;
        }
      }
    }
    u->lru_tick = ++tick_;
    forecast_.on_use(u->uses_seen);
    if (record_uses) {
      // Used again a quarter of an iteration or more after its last use (a
      // weight's backward after its forward), not by the next call (two
      // small weights sharing a 2 MiB unit): what tells training from
      // inference for the guesses (guesses.cpp).
      const UseHistory& h = u->uses_seen;
      const bool again = h.count >= 2 && h.at[h.count - 1] - h.at[h.count - 2] > forecast_.last_length() / 4;
      use_order_.on_use(u, forecast_.call_in_iteration(), again);
    }
    // A graph replays this without asking us: keep it mapped while the
    // capture, its graph or an executable graph made from it exists.
    if (capturing) {
      try {
        // A stream forked into another stream's capture has no record of
        // its own: the capture's sequence id names the record (asked once per call).
        const CUstream key = pins_to != nullptr ? pins_to : capture_record_key(stream);
        if (!capture_id_asked && !graph_pins_.recording(key)) {
          capture_id_asked = true;
          on_callers_context([&] { capture_id = capture_sequence_id(stream); });  // the caller's stream
        }
        if (!graph_pins_.note_use(key, u, capture_id)) {
          log(LogLevel::kDebug, "range {} used by a capture begun elsewhere: pinned for good", hex(u->begin));
        }
      } catch (...) {
        ++u->pins;  // no memory to record its owner: pinned for good
      }
    }
  }
  // A call whose units were all staged already (left staged by the last
  // iteration, or by another call) and not by a guess asked for nothing
  // ahead above, and the chain of guesses broke there: the first weight of
  // every iteration was staged on its launch after the last one (which the
  // budget had kept staged) was used. Ask from here too when what came after
  // it last time is compressed (nothing to do otherwise: no stager wake-up,
  // no driver call on a steady-state launch). Its own guess may predate
  // that successor: the order is asked again then.
  if (!asked_ahead && !capturing && last_staged && result == CUDA_SUCCESS) {
    if (guess_pending_) {
      // A guess from uses that could not stage its call yet, or did not
      // reach one: this call's ranges, once used, may make the room
      // (training: the weights the forward pass left staged are used by the
      // backward pass before the first one it must stage).
      request_lookahead(last_staged);
    } else {
      auto next = last_staged->next_guess.lock();
      if (!next) {
        try {
          next = order_.after(last_staged.get());
          last_staged->next_guess = next;
        } catch (...) {
        }
      }
      if (next && !next->dead && next->state == UnitState::kCompressed) request_lookahead(last_staged);
    }
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
    if (config_.report) {
      try {
        ++faults_by_caller_[t_launch != nullptr ? kernel_name(t_launch) : std::string(what != nullptr ? what : "?")];
      } catch (...) {
      }
    }
    if (trace_.enabled()) {
      // What asked and for what: the first unit it staged, the bytes, how
      // many units it touched (a launch without a parameter layout touches
      // all), and the kernel (why a program's faults repeat, RESULTS §6.6).
      try {
        CUdeviceptr first = staged_now.front()->begin;
        for (const auto& u : staged_now) first = std::min(first, u->begin);
        emit("fault", first, incoming,
             fmt::format("\"api\":\"{}\",\"units\":{},\"touched\":{}{}", what != nullptr ? what : "?",
                         staged_now.size(), touched.size(),
                         t_launch != nullptr ? fmt::format(",\"kernel\":\"{}\"", kernel_name(t_launch)) : ""));
      } catch (...) {
      }
    }
    enforce_budget(0, true);  // staging grew: the budget may now be exceeded
  }
  // Stores of the ranges evicted for this call, back from host memory now
  // that its own ranges are staged and their stores given up where pressed
  // (or evicted by a program's allocation since the last call). Driver
  // calls: relaxed, as every other of this hook's.
  if (!restores_due_.empty()) {
    relax();
    restore_due_stores();
  }
  return result;
}

void Runtime::release_held(std::vector<std::shared_ptr<Unit>>& units, CUstream stream, bool capturing) noexcept {
  if (units.empty()) return;
  const auto start = TraceClock::now();
  const uint64_t cpu_start = config_.report ? thread_cpu_ns() : 0;
  {
    std::lock_guard lock(mutex_);
    SharedEvent done = capturing ? nullptr : record_event(stream);
    CUcontext current = nullptr;
    const bool own_legacy = done && (stream == nullptr || stream == CU_STREAM_LEGACY) &&
                            driver().base.cuCtxGetCurrent(&current) == CUDA_SUCCESS && current == context_;
    for (auto& u : units) {
      if (u->in_flight > 0) --u->in_flight;
      if (done) u->add_use(done, stream, own_legacy);
      note_iteration_use(u);
    }
    if (done) note_tracked_call_locked(units, stream, done, own_legacy);
  }
  units.clear();
  stats_.hook_host_ns.add(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(TraceClock::now() - start).count()));
  if (config_.report) stats_.hook_cpu_ns.add(thread_cpu_ns() - cpu_start);
}

void Runtime::finish_use(CUstream stream, CUresult result) noexcept {
  if (t_touched.empty()) return;
  release_held(t_touched, stream, t_touched_capturing);
  if (result == CUDA_ERROR_LAUNCH_FAILED) check_status_word();
}

std::vector<std::shared_ptr<Unit>> Runtime::take_touched(bool& capturing) noexcept {
  capturing = t_touched_capturing;
  std::vector<std::shared_ptr<Unit>> taken;
  taken.swap(t_touched);
  return taken;
}

// ---- launches and copies ---------------------------------------------------------------

void Runtime::collect_units(const TagExtent& extent) {
  if (extent.empty()) return;
  const auto& all = *extent.all;
  if (extent.end() < all.size()) {
    // A declared tensor's units only (not a suffix), added as
    // collect_overlapping adds exact ranges (a few units, none twice).
    t_overlapping = true;
    for (size_t i = extent.first; i < extent.end(); ++i) {
      if (std::find(t_touched.begin(), t_touched.end(), all[i]) == t_touched.end()) t_touched.push_back(all[i]);
    }
    return;
  }
  size_t until = all.size();
  auto seen = std::find_if(t_extents.begin(), t_extents.end(),
                           [&](const auto& e) { return e.first == extent.all.get(); });
  if (seen != t_extents.end()) {
    if (seen->second <= extent.first) return;  // this suffix is collected already
    until = seen->second;
    seen->second = extent.first;
  } else {
    t_extents.emplace_back(extent.all.get(), extent.first);
  }
  t_touched.insert(t_touched.end(), all.begin() + static_cast<std::ptrdiff_t>(extent.first),
                   all.begin() + static_cast<std::ptrdiff_t>(until));
}

// The units that overlap [begin, end) exactly (a copy's bytes, a TMA
// descriptor's tensor): no reach beyond them.
void Runtime::collect_overlapping(const RangeMap<TagExtent>::Snapshot& snapshot, CUdeviceptr begin,
                                  CUdeviceptr end) {
  t_overlapping = true;
  RangeMap<TagExtent>::for_each_overlapping(snapshot, begin, end, [&](const auto& e) {
    if (e.value->empty()) return;
    const auto& all = *e.value->all;
    auto u = std::partition_point(all.begin(), all.end(), [&](const auto& x) { return x->end <= begin; });
    for (; u != all.end() && (*u)->begin < end; ++u) {
      if (std::find(t_touched.begin(), t_touched.end(), *u) == t_touched.end()) t_touched.push_back(*u);
    }
  });
}

// What before_launch and before_transfer share: `visit(snapshot)` calls
// collect_units for every tagged extent the call touches; those units are
// held and staged for the call's stream. A launch that touches nothing
// tracked costs an atomic load and the snapshot.
template <typename Visit>
CUresult Runtime::hold_touched(CUstream stream, bool per_thread_stream, const char* what, Visit&& visit) noexcept {
  compress_pending(false);
  if (tracked_.empty()) return CUDA_SUCCESS;
  const auto snapshot = tracked_.snapshot();
  t_touched.clear();
  t_extents.clear();
  t_overlapping = false;
  try {
    visit(*snapshot);
    // Lists of different granularity (a cluster's, the allocation's, exact
    // ranges) overlap.
    if (t_extents.size() > 1 || (t_overlapping && !t_extents.empty())) {
      std::sort(t_touched.begin(), t_touched.end());
      t_touched.erase(std::unique(t_touched.begin(), t_touched.end()), t_touched.end());
    }
  } catch (...) {
    t_touched.clear();
    t_extents.clear();
    return CUDA_SUCCESS;
  }
  t_extents.clear();
  if (t_touched.empty()) return CUDA_SUCCESS;
  const auto start = TraceClock::now();
  const uint64_t cpu_start = config_.report ? thread_cpu_ns() : 0;
  const CUstream resolved = resolve(stream, per_thread_stream);
  t_touched_capturing = stream_capturing(resolved);
  const CUresult r = prepare(t_touched, resolved, t_touched_capturing, what);
  stats_.hook_host_ns.add(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(TraceClock::now() - start).count()));
  if (config_.report) stats_.hook_cpu_ns.add(thread_cpu_ns() - cpu_start);
  return r;
}

// The units a launch touches: what its parameters point at (plain and
// interior pointers, pointer arrays, TMA descriptors); everything tracked
// when its parameters cannot be read.
void Runtime::collect_launch(const LaunchDesc& d, const RangeMap<TagExtent>::Snapshot& snapshot) {
  auto touch = [&](uint64_t address) {
    if (const auto* e = RangeMap<TagExtent>::find(snapshot, address)) collect_units(*e->value);
  };
  const bool arrays = !pointer_arrays_.empty();
  const auto array_snapshot = arrays ? pointer_arrays_.snapshot() : nullptr;
  std::shared_ptr<const RangeMap<AllocationInfo>::Snapshot> info_snapshot;  // taken once an array is met
  // An array's targets are known by allocation (its base): every unit of
  // it. The base's own reach is not enough: it ends with the first cluster
  // (a weight far after another in a segment) or, with
  // NEUZIP_TAG_EXTENTS=1, with a tensor declared there.
  // (Each entry's unit list whole, once per list: a large allocation's many
  // tags share a few lists, so this stays cheap.)
  auto touch_allocation = [&](CUdeviceptr base) {
    if (!info_snapshot) info_snapshot = allocation_info_.snapshot();
    const auto* info = RangeMap<AllocationInfo>::find(*info_snapshot, base);
    if (info == nullptr) {
      touch(base);
      return;
    }
    RangeMap<TagExtent>::for_each_overlapping(snapshot, info->begin, info->end, [&](const auto& e) {
      if (e.value->all) collect_units(TagExtent{e.value->all, 0});
    });
  };
  const bool scanned = for_each_param_word(
      d, params_,
      [&](uint64_t word) {
        touch(word);
        // A pointer to an array of pointers into managed memory.
        if (arrays) {
          if (const auto* a = RangeMap<std::vector<CUdeviceptr>>::find(*array_snapshot, word)) {
            for (CUdeviceptr target : *a->value) touch_allocation(target);
          }
        }
      },
      [&](const unsigned char* bytes, size_t size, std::vector<size_t>& accounted) {
        if (tensor_maps_.empty()) return;
        for (size_t off = 0; off + TensorMapRegistry::kBytes <= size; off += TensorMapRegistry::kAlign) {
          auto target = tensor_maps_.find(bytes + off);
          if (!target) continue;
          if (target->extent == 0) {
            touch(target->address);  // how far it reads is unknown: the reach of a pointer
            continue;
          }
          // TMA reads nothing outside the descriptor's tensor: its units only.
          collect_overlapping(snapshot, target->address, target->address + target->extent);
          accounted.push_back(off);
        }
      });
  // No layout for this kernel: it may read anything compressed.
  if (!scanned) {
    for (const auto& e : snapshot) collect_units(*e.value);
  }
}

CUresult Runtime::before_launch(const LaunchDesc& d) noexcept {
  stats_.launches_seen.add();
  t_launch = &d;
  struct Forget {
    ~Forget() { t_launch = nullptr; }
  } forget;
  return hold_touched(d.stream, d.per_thread_stream, d.api,
                      [&](const auto& snapshot) { collect_launch(d, snapshot); });
}

// What a graph's nodes touch (graph_nodes.cpp), collected as their launches
// and copies would be; an incomplete listing (a node the shim could not read
// and a capture did not make) touches everything. May throw (allocation).
std::vector<std::shared_ptr<Unit>> Runtime::units_touched_by(const GraphContents& c) {
  std::vector<std::shared_ptr<Unit>> out;
  if (tracked_.empty()) return out;
  const auto snapshot = tracked_.snapshot();
  t_touched.clear();
  t_extents.clear();
  t_overlapping = false;
  struct Clear {
    ~Clear() {
      t_touched.clear();
      t_extents.clear();
    }
  } clear;
  if (!c.complete) {
    for (const auto& e : *snapshot) collect_units(*e.value);
  } else {
    for (const auto& d : c.launches) collect_launch(d, *snapshot);
    for (const auto& span : c.spans) collect_overlapping(*snapshot, span.ptr, span.ptr + span.bytes);
  }
  out = t_touched;
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void Runtime::after_launch(const LaunchDesc& d, CUresult result) noexcept {
  if (result == CUDA_SUCCESS) note_launch_queued();  // before its own use is recorded (trailing_uses.cpp)
  finish_use(resolve(d.stream, d.per_thread_stream), result);
}

CUresult Runtime::before_transfer(const TransferDesc& d) noexcept {
  return hold_touched(d.stream, d.per_thread_stream, d.api, [&](const auto& snapshot) {
    // A copy's bytes are known exactly: only the units they overlap (a kernel's
    // reach does not apply; a loader's next copy lands one byte past the last
    // tag and must not stage it).
    for (size_t i = 0; i < d.span_count; ++i) collect_overlapping(snapshot, d.spans[i].ptr, d.spans[i].ptr + d.spans[i].bytes);
  });
}

void Runtime::after_transfer(const TransferDesc& d, CUresult result) noexcept {
  const CUstream stream = resolve(d.stream, d.per_thread_stream);
  finish_use(stream, result);
  if (d.waits && result == CUDA_SUCCESS) note_stream_wait(stream);
  if (result != CUDA_SUCCESS || !d.host_to_device || stream_capturing(stream)) return;
  {
    std::lock_guard lock(mutex_);
    if (allocations_.empty()) return;
    // Host data arriving after launches: the program moved on to a new
    // iteration (a batch, a layer loaded on demand).
    if (launched_in_generation_) {
      ++generation_;
      forecast_.on_iteration();
      order_.on_iteration();
      use_order_.on_iteration();
      launched_in_generation_ = false;
      emit_counters();
    }
    SharedEvent filled;
    for (size_t i = 0; i < d.span_count; ++i) {
      const Span& s = d.spans[i];
      if (s.access != Access::kWrite || s.bytes == 0) continue;
      Allocation* a = allocation_containing(s.ptr);
      if (a == nullptr) continue;
      if (!filled) filled = d.is_async ? record_event(stream) : nullptr;
      tag_locked(*a, s.ptr, s.ptr + s.bytes, config_.htod_dtype, filled);
    }
    note_pointer_array(d);
  }
  compress_pending(false);
}

// A small host-to-device copy whose words point into managed allocations is a
// pointer array (batched and grouped GEMMs build them on the host): remember
// what it points to, so a launch passing the array stages those allocations.
void Runtime::note_pointer_array(const TransferDesc& d) noexcept {
  constexpr size_t kMaxArrayBytes = 64 << 10;
  if (d.host_src == nullptr || d.span_count != 1 || d.spans[0].bytes > kMaxArrayBytes) return;
  const Span& s = d.spans[0];
  const auto* bytes = static_cast<const unsigned char*>(d.host_src);
  // Arrays of pointers (or of small structs of them) have one in their first
  // 64 bytes; weight data never does. Checking those first keeps a loader's
  // many copies cheap.
  bool looks_like_pointers = false;
  for (size_t off = 0; off + 8 <= std::min<size_t>(s.bytes, 64) && !looks_like_pointers; off += 8) {
    uint64_t w;
    std::memcpy(&w, bytes + off, 8);
    looks_like_pointers = w >= managed_low_ && w < managed_high_;
  }
  // A module global is read without a parameter: every word counts (a struct
  // of sizes and pointers may start with sizes).
  ModuleGlobal* global = module_global_at(s.ptr, s.bytes);
  if (!looks_like_pointers && global == nullptr) {
    if (!pointer_arrays_.empty()) pointer_arrays_.replace(s.ptr, s.ptr + s.bytes, {});
    return;
  }
  try {
    std::vector<CUdeviceptr> targets;
    for (size_t off = 0; off + 8 <= s.bytes; off += 8) {
      uint64_t w;
      std::memcpy(&w, bytes + off, 8);
      // Weight data (what most copies carry) is never inside the managed VA span.
      if (w < managed_low_ || w >= managed_high_) continue;
      const Allocation* a = allocation_containing(w);
      if (a != nullptr && std::find(targets.begin(), targets.end(), a->base) == targets.end()) targets.push_back(a->base);
    }
    if (global != nullptr) pin_global_targets(*global, targets);
    if (targets.empty()) {
      if (!pointer_arrays_.empty()) pointer_arrays_.replace(s.ptr, s.ptr + s.bytes, {});
      return;
    }
    std::vector<RangeMap<std::vector<CUdeviceptr>>::Entry> entries;
    entries.push_back({s.ptr, s.ptr + s.bytes, std::make_shared<std::vector<CUdeviceptr>>(std::move(targets))});
    pointer_arrays_.replace(s.ptr, s.ptr + s.bytes, std::move(entries));
  } catch (...) {
  }
}

void Runtime::on_tensor_map(const CUtensorMap* map, CUdeviceptr global_address, size_t bytes) noexcept {
  try {
    if (const size_t forgotten = tensor_maps_.record(map, global_address, config_.tma_extents ? bytes : 0)) {
      log(LogLevel::kDebug, "{} TMA descriptors unused for longest forgotten ({} kept)", forgotten,
          tensor_maps_.size());
    }
  } catch (...) {
    log(LogLevel::kError, "out of memory recording a TMA descriptor: launches passing it are not seen");
  }
  emit("tensor_map", global_address, bytes);
}

void Runtime::on_tensor_map_replaced(const void* before, const CUtensorMap* map, CUdeviceptr global_address) noexcept {
  // Same dimensions and strides, another address: the extent carries over.
  size_t extent = 0;
  if (before != nullptr) {
    if (auto old = tensor_maps_.find(static_cast<const unsigned char*>(before))) extent = old->extent;
  }
  on_tensor_map(map, global_address, extent);
}

}  // namespace nz::rt
