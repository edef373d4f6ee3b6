// handoff_encode.cpp: encode handovers: a rewritten run evicted without the
// launching thread waiting for its last uses or for its encode.
//
// A handover (handoff.h) lets the device order an eviction of a run found
// unchanged before; a run found changed (training rewrites its weights every
// step) had to be hashed and encoded on the host path: wait for its last
// uses, encode, read the length back, check the header, then unmap — the
// launching thread's largest cost in training (docs/RESULTS.md §4.9.4). Here
// the device does all of it, in order on the guard stream:
//
//  1. wait for the run's last uses; encode each unit into a buffer of the
//     size its last encoding suggests (+1/64: encode_size_hint), the length
//     into page-locked memory;
//  2. the guard kernel (kGuardEncoded) hashes each unit and checks its
//     encoding (length within the buffer, magic, sizes, header checksum); a
//     whole one has its header copied to host memory, any other is rescued
//     (the unit's bytes copied to host memory, as a changed-after-all unit of
//     a plain handover is);
//  3. the pages go back at once; what is staged into them next waits for the
//     guard event on the device.
//
// Settled like any handover (settle_encoded below): the new store is adopted
// with the hash the guard computed, or the unit is restored from its rescue
// copy at its next staging and encoded again on the host path. Nothing is
// lost whatever the encode did; a kernel never meets an unmapped page (the
// old mapping stays until the guard event). Lossless ranges only (a lossy
// store's hash describes its decode, which the device path cannot rewrite).
#include <algorithm>
#include <cstring>

#include "runtime/handoff.h"
#include "runtime/log.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

namespace {

constexpr size_t kSlotAlign = 256;

size_t align_up(size_t n) { return (n + kSlotAlign - 1) / kSlotAlign * kSlotAlign; }

// The element type the unit's last encoding used (bf16 or fp32 coding of
// untyped bytes is decided by trying both; the device path keeps the choice).
nz_dtype encoding_dtype(const Unit& u) {
  if (u.dtype == NZ_TAG_BF16 || u.dtype == NZ_TAG_FP16 || u.dtype == NZ_TAG_FP32) return static_cast<nz_dtype>(u.dtype);
  return static_cast<nz_dtype>(u.encoded_dtype);
}

// The most bytes of header and tables an encoding of `count` elements can
// have (docs/FORMAT.md: header, presence bitmap + u16 per symbol, 24 per chunk).
size_t header_capacity(uint64_t count, const nz_options& opts) {
  const uint64_t chunk = opts.chunk_elems ? opts.chunk_elems : 1;
  const uint64_t chunks = (count + chunk - 1) / chunk;
  return NZ_HEADER_BYTES + 32 + 2 * 256 + 24 * chunks;
}

}  // namespace

bool Runtime::encode_handoff_eligible(const Unit& u) const noexcept {
  if (!handoffs_enabled_ || !config_.encode_handoffs || !config_.staging_bytes || !u.run) return false;
  for (const auto& w : u.run->units) {
    auto v = w.lock();
    if (!v || v->run != u.run) continue;
    if (v->dead || v->state != UnitState::kStaged || v->in_flight > 0 || v->pins > 0) return false;
    if (held_elsewhere(*v)) return false;  // its fence could come before the owner's reading launch
    // A use on a stream that waits for later work: the fence would make
    // the next decodes wait for it on the device (patient_wait.cpp).
    if (behind_stall(*v)) return false;
    // Found changed before (what it pays off for: such a run is encoded at
    // every eviction), with an encoding to size the new one by; never a
    // lossy range or one whose element type changed since (recode).
    if (!v->ever_changed || v->encoded_bytes == 0 || v->recode || v->rescue) return false;
    if (CompressedStore::lossy_for(v->dtype, config_)) return false;
    const nz_dtype t = encoding_dtype(*v);
    if (t != NZ_BF16 && t != NZ_FP16 && t != NZ_FP32) return false;
    if (v->bytes() % nz_dtype_size(t) != 0) return false;
  }
  return true;
}

// The encoder's workspace on the guard stream: one, sized for the largest
// unit, since the stream runs the encodes one after another.
bool Runtime::ensure_guard_workspace(size_t bytes) noexcept {
  if (guard_workspace_bytes_ >= bytes) return true;
  // Grown only before the first encode handover of a larger unit: let queued
  // encodes finish with the old one first.
  if (guard_workspace_ && driver().base.cuStreamSynchronize(guard_stream_.get()) != CUDA_SUCCESS) return false;
  guard_workspace_.reset();
  guard_workspace_bytes_ = 0;
  CUdeviceptr p = 0;
  if (store_alloc(&p, bytes) != CUDA_SUCCESS) return false;
  guard_workspace_ = UniqueDeviceMemory(p);
  guard_workspace_bytes_ = bytes;
  return true;
}

bool Runtime::hand_over_encoding(const std::shared_ptr<Unit>& u, bool hold) noexcept {
  const std::shared_ptr<StagedRun> run = u->run;
  if (!run || !guard_stream_) return false;
  const auto& api = driver().base;
  const auto start = TraceClock::now();
  std::vector<std::shared_ptr<Unit>> units;
  std::vector<nz_options> opts;
  std::vector<size_t> capacity, header_cap;
  std::shared_ptr<Handoff> h;
  size_t workspace = 0;
  try {
    for (auto& v : run->alive())
      if (v->run == run) units.push_back(std::move(v));
    if (units.empty()) return false;
    h = std::make_shared<Handoff>();
    const size_t flags = align_up(units.size() * sizeof(uint32_t));
    size_t results = align_up(flags + run->bytes());
    for (const auto& v : units) {
      const nz_options o = config_.codec_options(encoding_dtype(*v), false);
      const uint64_t count = v->bytes() / nz_dtype_size(o.dtype);
      opts.push_back(o);
      capacity.push_back(std::min(encode_size_hint(*v, false), nz_compress_bound(count, &o)));
      header_cap.push_back(header_capacity(count, o));
      workspace = std::max(workspace, codec_->encode_workspace_bytes(count, o));
      h->units.push_back(v);
      h->offsets.push_back(flags + static_cast<size_t>(v->begin - run->begin));
      h->results.push_back(results);
      h->header_caps.push_back(header_cap.back());
      results = align_up(results + gpu::DeviceCodec::kGuardResultHeader + header_cap.back());
    }
    // Unsettled encode handovers hold their pages (or the next run's) beyond
    // what the host waited for: within the allowance (device_work_allowance).
    if (unwaited_bytes() + run->bytes() > device_work_allowance()) return false;
    h->slot = rescue_.take(results);  // (unwaited_bytes above let go of what decodes no longer read)
    if (!h->slot) return false;  // as far ahead as the rescue memory allows: the host path instead
    std::memset(h->slot->host(), 0, flags);
    for (size_t i = 0; i < units.size(); ++i) std::memset(h->slot->host() + h->results[i], 0, 2 * sizeof(uint64_t));
    for (size_t c : capacity) {
      CUdeviceptr p = 0;
      if (store_alloc(&p, c) != CUDA_SUCCESS) return false;  // the buffers made so far go with `h`
      h->encodings.emplace_back(p);
    }
  } catch (...) {
    return false;
  }
  if (workspace > 0 && !ensure_guard_workspace(workspace)) return false;
  const CUstream stream = guard_stream_.get();
  // The buffers come from the stream-ordered allocator on the internal
  // stream (store_alloc): another stream may use them only once that stream
  // reached their allocation (the pool may have ordered it after the free
  // of memory it reuses).
  if (SharedEvent allocated = record_event(store_->internal_stream());
      !allocated || api.cuStreamWaitEvent(stream, allocated->get(), 0) != CUDA_SUCCESS)
    return false;
  // After every queued use of the run, on any stream.
  for (const auto& v : units) {
    seal_open_use(*v);
    for (const auto& e : v->uses)
      if (e && *e && !event_done(e) && api.cuStreamWaitEvent(stream, e->get(), 0) != CUDA_SUCCESS) return false;
  }
  // Nothing is given up until the guard's event is recorded: any failure
  // before that only waits for what was enqueued and keeps the run staged.
  auto abandon = [&] {
    api.cuStreamSynchronize(stream);
    return false;
  };
  for (size_t i = 0; i < units.size(); ++i) {
    const auto& v = units[i];
    const uint64_t count = v->bytes() / nz_dtype_size(opts[i].dtype);
    if (codec_->encode(stream, v->begin, count, opts[i], h->encodings[i].get(), capacity[i],
                       h->slot->device() + h->results[i], guard_workspace_.get(), guard_workspace_bytes_) !=
        CUDA_SUCCESS)
      return abandon();
  }
  gpu::DeviceCodec::GuardJob jobs[gpu::DeviceCodec::kMaxGuardBatch];
  for (size_t first = 0; first < units.size(); first += gpu::DeviceCodec::kMaxGuardBatch) {
    const size_t n = std::min(units.size() - first, gpu::DeviceCodec::kMaxGuardBatch);
    for (size_t k = 0; k < n; ++k) {
      const size_t i = first + k;
      const auto& v = units[i];
      // With its old store still there, unchanged content keeps it (and the
      // new encoding is discarded); without, the encoding decides.
      const bool has_store = static_cast<bool>(v->store.data);
      jobs[k] = {v->begin,
                 v->bytes(),
                 has_store ? v->store.hash : 0,
                 h->slot->device() + h->offsets[i],
                 h->encodings[i].get(),
                 capacity[i],
                 h->slot->device() + h->results[i],
                 header_cap[i],
                 has_store ? gpu::DeviceCodec::kGuardEncodedOrSame : gpu::DeviceCodec::kGuardEncoded};
    }
    if (codec_->guard_batch(stream, std::span(jobs, n), h->slot->device() + first * sizeof(uint32_t)) !=
        CUDA_SUCCESS)
      return abandon();
  }
  h->done = record_event(stream);
  if (!h->done) return abandon();
  h->encoded = true;
  if (!give_over(h, run, units, hold)) return abandon();
  h->encoded_bytes = run->bytes();
  encode_handoff_bytes_ += h->encoded_bytes;
  stats_.encode_handoffs.add(units.size());
  if (hold) stats_.encode_handoffs_held.add(units.size());
  emit_timed("handoff_encode", run->begin, run->bytes(), start);
  return true;
}

// A unit of an encode handover whose encoding the guard found whole: it
// becomes the store (with the hash of the bytes it encodes).
void Runtime::settle_encoded(Unit& u, Handoff& h, size_t i) noexcept {
  const unsigned char* result = h.slot->host() + h.results[i];
  uint64_t words[2];
  std::memcpy(words, result, sizeof words);
  StoredRange fresh;
  fresh.bytes = words[0];
  fresh.original_bytes = u.bytes();
  fresh.hash = words[1];
  if (!CompressedStore::check_header(result + gpu::DeviceCodec::kGuardResultHeader, h.header_caps[i], fresh.bytes,
                                     fresh.original_bytes, fresh.header) &&
      !store_->validate_header(h.encodings[i].get(), fresh.bytes, fresh.original_bytes, fresh.header)) {
    // The device checked the same before the pages went, so only a fault of
    // the copy gets past that, and then the encoding's own bytes still pass.
    // The encoding is all there is of the content.
    log(LogLevel::kError, "header of range {} encoded on the device failed validation: its content is lost",
        hex(u.begin));
    return;
  }
  fresh.data = std::move(h.encodings[i]);
  drop_store(u);
  u.ever_changed = true;
  u.clean_evictions = 0;
  u.recode = false;
  ++u.change_streak;
  u.changes.note(true, generation_);
  stats_.bytes_compressed.add(fresh.bytes);
  u.store = std::move(fresh);
  u.encoded_bytes = u.store.bytes;
  u.encoded_dtype = u.store.header.size() > 6 ? u.store.header[6] : 0;
  stats_.recompressions.add();
  // Device work the host never waited for: counted, with no host time.
  stats_.encoded(u.bytes(), 0);
  emit("recompress", u.begin, u.bytes(), fmt::format("\"compressed\":{},\"on_device\":true", u.store.bytes));
}

}  // namespace nz::rt
