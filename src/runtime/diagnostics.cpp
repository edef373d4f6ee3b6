// diagnostics.cpp: checksum-failure reporting, nz_stats, the exit report.
#include "runtime/runtime.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

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
  stats_.vmm_calls.set(vmm_.vmm_calls());
  stats_.fill(out);
  out.unserved_bytes_peak = unserved_.peak_total();
}

// Where device memory is, as far as the runtime knows: said when a staging
// finds none, so that an out-of-memory names what held it.
std::string Runtime::memory_breakdown() noexcept {
  size_t resident = 0, staged = 0, stores = 0, staged_stores = 0, permanent = 0;
  for (const auto& [base, a] : allocations_) {
    for (const auto h : a->pages) resident += h != 0 ? vmm_.page_size() : 0;
    if (a->shared) resident += a->bytes;  // one exportable handle backs it whole (ipc_export.cpp)
    for (const auto& [begin, p] : a->permanent) permanent += p.first;
    for (const auto& [begin, u] : a->units) {
      // Staged units count whether or not they kept their store (under
      // pressure most give it up: counted only with one, a call's staged
      // units read "staged 0" in the line of its out-of-memory).
      if (u->state == UnitState::kStaged) staged += u->bytes();
      if (u->store.data) (u->state == UnitState::kStaged ? staged_stores : stores) += u->store.bytes;
    }
  }
  size_t freed_later = 0;
  for (const auto& f : freed_later_) freed_later += f.bytes;
  size_t free = 0, total = 0;
  driver().base.cuMemGetInfo(&free, &total);
  try {
    return fmt::format(
        "device free {} of {}; own pages {}, staged {} (their stores {}), stores {}, resident for good {}, "
        "staging handles in use {}, cached {}, encode reserve {}, held by handovers {}, freed in stream order {}",
        free, total, resident, staged, staged_stores, stores, permanent, pool_.in_use_bytes(), pool_.cached_bytes(),
        store_ ? store_->reserve_bytes() : 0, held_bytes_, freed_later);
  } catch (...) {
    return {};
  }
}

bool Runtime::served_anything() const noexcept {
  return ever_set_up_.load(std::memory_order_relaxed) || unserved_.peak_total() != 0;
}

void Runtime::report_at_exit() noexcept {
  // A helper process of the program (Inductor's compile workers under
  // NEUZIP_REPORT=1 would each print a report of zeros).
  if (!served_anything()) return;
  check_status_word();
  stats_.vmm_calls.set(vmm_.vmm_calls());
  nz_runtime_stats s{};
  stats_.fill(s);
  uint64_t peak = stats_.device_used_peak.get();
  struct SimStats { uint64_t total, physical, peak, faults, launches; };
  using GetStats = int (*)(SimStats*);
  if (auto fn = reinterpret_cast<GetStats>(dlsym(RTLD_DEFAULT, "nzsim_get_stats"))) {
    SimStats sim{};
    if (fn(&sim) == 0) peak = sim.peak;
  }
  // At exit the program has usually freed everything, so report high-water
  // marks, not current values (which would all read 0).
  log(LogLevel::kError,
      "peak device used {} bytes; device bytes saved: peak {}; staging peak {}; "
      "faults {} decompressions {} recompressions {} drops {} prefetches {} (used {}); "
      "stores released under pressure {} (re-encoded unchanged {}; restored from host copies {}); "
      "stores moved to host memory {} (left there at evictions {}; decoded from host copies {}); checksum failures {}; "
      "vmm calls {} (creates {}) decode launches {} bytes decompressed {} hook host ns {} (waiting {}; for the lock {}, for the stager {}, encoding {}); "
      "stagings ahead {} on launch {}; handed over {} (changed {}); encodes {} bytes encoded {} encode host ns {}; "
      "evicted off the lock {} runs ({} units encoded; {} handed over by launching threads); "
      "encoded on the device {} units ({} rescued; {} kept their pages until settled); hook cpu ns {}; "
      "parked in host memory {}",
      peak, s.device_bytes_saved_peak, s.staging_bytes_peak, s.faults, s.decompressions, s.recompressions,
      s.drops, s.prefetches, stats_.prefetch_hits.get(), stats_.store_releases.get(), stats_.reencodes.get(),
      stats_.stores_restored.get(), stats_.stores_offloaded.get(), stats_.stores_left_in_host.get(), stats_.decodes_from_host_copies.get(),
      s.checksum_failures, s.vmm_calls, vmm_.create_calls(), s.decode_launches, s.bytes_decompressed, s.hook_host_ns, s.hook_wait_ns,
      stats_.hook_lock_ns.get(), stats_.hook_stager_ns.get(), stats_.hook_encode_ns.get(), s.stagings_ahead, s.stagings_on_launch, stats_.handoffs.get(), stats_.rescues.get(), stats_.encodes.get(),
      stats_.bytes_encoded.get(),
      stats_.encode_ns.get(), stats_.evicted_ahead.get(), stats_.encoded_ahead.get(),
      stats_.evictions_deferred.get(), stats_.encode_handoffs.get(), stats_.encode_rescues.get(), stats_.encode_handoffs_held.get(),
      stats_.hook_cpu_ns.get(), stats_.parked.get());
  if (const uint64_t stalled = stats_.stalled_waits.get()) {
    log(LogLevel::kError,
        "evictions that gave up waiting for a blocked stream: {} (staged over the budget instead; "
        "NEUZIP_WAIT_PATIENCE_MS)",
        stalled);
  }
  if (const uint64_t unserved = unserved_.peak_total()) {
    log(LogLevel::kError,
        "passed through, never compressed: peak {} bytes (the program's own virtual memory {}, stream-ordered "
        "allocations {}); still held at exit {}",
        unserved, unserved_.peak(UnservedKind::kProgramVmm), unserved_.peak(UnservedKind::kStreamOrdered),
        unserved_.live(UnservedKind::kProgramVmm) + unserved_.live(UnservedKind::kStreamOrdered));
  }
  // Another thread may hold the lock for good at exit: never wait for it.
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (lock.owns_lock() && !faults_by_caller_.empty()) {
    // The callers that faulted most: a launch that restages every iteration
    // (or at every call) shows here by name.
    try {
      std::vector<std::pair<uint64_t, std::string>> top;
      for (const auto& [name, n] : faults_by_caller_) top.emplace_back(n, name);
      std::sort(top.begin(), top.end(), std::greater<>());
      std::string line;
      for (size_t i = 0; i < top.size() && i < 6; ++i) {
        const std::string& name = top[i].second;
        line += fmt::format("{}{} {}{}", i ? "; " : "", top[i].first, name.substr(0, 90), name.size() > 90 ? "..." : "");
      }
      log(LogLevel::kError, "faults by caller ({} callers): {}", top.size(), line);
    } catch (...) {
    }
  }
}

// Cumulative staging-work counters as one trace event (at each iteration
// boundary and at exit): nztrace turns them into totals and per-iteration figures.
void Runtime::emit_counters() noexcept {
  if (!trace_.enabled()) return;
  stats_.vmm_calls.set(vmm_.vmm_calls());
  nz_runtime_stats s{};
  stats_.fill(s);
  emit("counters", 0, 0,
       fmt::format("\"iteration\":{},\"vmm_calls\":{},\"decode_launches\":{},\"bytes_decompressed\":{},"
                   "\"hook_host_ns\":{},\"hook_wait_ns\":{},\"stagings_ahead\":{},\"stagings_on_launch\":{},"
                   "\"unserved_vmm_peak\":{},\"unserved_async_peak\":{}{}",
                   generation_, s.vmm_calls, s.decode_launches, s.bytes_decompressed, s.hook_host_ns, s.hook_wait_ns,
                   s.stagings_ahead, s.stagings_on_launch, unserved_.peak(UnservedKind::kProgramVmm),
                   unserved_.peak(UnservedKind::kStreamOrdered), process_members()));
}

// Which process of the run wrote the trace: its pid, and its rank in a
// distributed run (Config::rank), so that nztrace can say "rank 3" for each
// process of a torchrun.
std::string Runtime::process_members() const {
  const long pid = static_cast<long>(::getpid());
  return config_.rank ? fmt::format(",\"pid\":{},\"rank\":{}", pid, *config_.rank) : fmt::format(",\"pid\":{}", pid);
}

}  // namespace nz::rt
