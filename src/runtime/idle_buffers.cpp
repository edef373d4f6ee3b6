// idle_buffers.cpp: NEUZIP_COMPRESS=optimizer. Training's largest buffers
// (Adam's moments, fp32 master weights, kept gradients) are never filled
// from the host, so the host-to-device rule never tags them. With this
// opt-in, every large allocation is tagged whole when it is made, as untyped
// bytes (lossless; the encoder tries bf16 and fp32 and keeps the smaller):
// no launch can have used it yet, so it is tracked from its first use. From
// then on the rules for weights apply: compressed once launches used it in
// NEUZIP_LONG_LIVED iterations (at once with a fixed NEUZIP_STAGING_MB or
// when memory runs short), staged by the launch that touches it (the
// optimizer step, once per iteration), recompressed at eviction when it
// changed. A host-to-device copy into it later (weights, a batch) merges its
// tag into the allocation's and counts as a refill, as for any tagged range.
// Small allocations (a caching allocator's 2 MiB segments of activations,
// recycled every step) are left alone.
#include "runtime/runtime.h"

#include "runtime/log.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

void Runtime::tag_if_state(Allocation& a) noexcept {
  if (!config_.compress_idle || a.requested < config_.idle_min_bytes) return;
  log(LogLevel::kDebug, "allocation {} ({} bytes) tagged whole (NEUZIP_COMPRESS=optimizer)", hex(a.base),
      a.requested);
  tag_locked(a, a.base, a.base + a.requested, NZ_TAG_BYTES, nullptr);
}

}  // namespace nz::rt
