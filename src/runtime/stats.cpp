#include "runtime/stats.h"

namespace nz::rt {

uint64_t Stats::device_bytes_saved() noexcept {
  const uint64_t released = released_bytes.get();
  const uint64_t cost = bytes_compressed.get() + staging_bytes.get();
  const uint64_t saved = released > cost ? released - cost : 0;
  device_bytes_saved_peak.raise_to(saved);
  return saved;
}

void Stats::fill(nz_runtime_stats& out) noexcept {
  out.bytes_tagged = bytes_tagged.get();
  out.bytes_compressible = bytes_compressible.get();
  out.bytes_original_compressed = bytes_original_compressed.get();
  out.bytes_compressed = bytes_compressed.get();
  out.staging_bytes = staging_bytes.get();
  out.staging_bytes_peak = staging_bytes_peak.get();
  out.staging_budget = staging_budget.get();
  out.device_bytes_saved = device_bytes_saved();
  out.device_bytes_saved_peak = device_bytes_saved_peak.get();
  out.faults = faults.get();
  out.decompressions = decompressions.get();
  out.recompressions = recompressions.get();
  out.drops = drops.get();
  out.prefetches = prefetches.get();
  out.launches_seen = launches_seen.get();
  out.checksum_failures = checksum_failures.get();
  out.vmm_calls = vmm_calls.get();
  out.decode_launches = decode_launches.get();
  out.bytes_decompressed = bytes_decompressed.get();
  out.hook_host_ns = hook_host_ns.get();
  out.hook_wait_ns = hook_wait_ns.get();
  out.stagings_ahead = prefetches.get();
  out.stagings_on_launch = stagings_on_launch.get();
  out.stalled_waits = stalled_waits.get();
}

}  // namespace nz::rt
