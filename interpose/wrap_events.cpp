// wrap_events.cpp: cuEventRecord(WithFlags) and cuStreamWaitEvent, forwarded
// and then told to the runtime, which cares only while some stream is known
// to wait for work launched later (a queued cuStreamWaitValue): a stream that
// waits for an event recorded behind such a wait is blocked as well
// (src/runtime/patient_wait.cpp). Otherwise the cost is one relaxed load.
#include "wrap_common.h"

namespace nz::shim {
namespace {

// cuEventRecord and cuEventRecordWithFlags (Flags: the latter's flags).
template <Hook H, bool PT, typename... Flags>
CUresult record(CUevent event, CUstream st, Flags... flags) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUevent, CUstream, Flags...)>(H);
  if (!real) return missing_entry(H);
  const CUresult r = real(event, st, flags...);
  if (r == CUDA_SUCCESS && rt::active()) rt::after_event_record(event, st, PT);
  return r;
}

template <Hook H, bool PT>
CUresult event_record(CUevent event, CUstream st) noexcept {
  return record<H, PT>(event, st);
}

template <Hook H, bool PT>
CUresult event_record_with_flags(CUevent event, CUstream st, unsigned flags) noexcept {
  return record<H, PT, unsigned>(event, st, flags);
}

template <Hook H, bool PT>
CUresult stream_wait_event(CUstream st, CUevent event, unsigned flags) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUstream, CUevent, unsigned)>(H);
  if (!real) return missing_entry(H);
  const CUresult r = real(st, event, flags);
  if (r == CUDA_SUCCESS && rt::active()) rt::after_stream_wait_event(st, PT, event);
  return r;
}

}  // namespace
}  // namespace nz::shim

NZ_WRAP_PAIR(EventRecord, EventRecord_ptsz, nz::shim::event_record, (CUevent e, CUstream st), (e, st))
NZ_WRAP_PAIR(EventRecordWithFlags, EventRecordWithFlags_ptsz, nz::shim::event_record_with_flags,
             (CUevent e, CUstream st, unsigned f), (e, st, f))
NZ_WRAP_PAIR(StreamWaitEvent, StreamWaitEvent_ptsz, nz::shim::stream_wait_event,
             (CUstream st, CUevent e, unsigned f), (st, e, f))
