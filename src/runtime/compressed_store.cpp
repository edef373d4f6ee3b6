#include "runtime/compressed_store.h"

#include <algorithm>
#include <cstring>

#include "neuzip/runtime.h"
#include "runtime/log.h"
#include "runtime/rescue_pool.h"

namespace nz::rt {
namespace {

constexpr double kPoorRatio = 0.95;   // keep resident when compression saves less
constexpr double kGoodEnough = 0.80;  // stop trying other element types below this

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

bool is_float_tag(int dtype) { return dtype == NZ_TAG_BF16 || dtype == NZ_TAG_FP16 || dtype == NZ_TAG_FP32; }

}  // namespace

CUresult CompressedStore::read_u64(CUdeviceptr device_word, uint64_t& out) noexcept {
  const auto& api = driver().base;
  CUresult r = api.cuMemcpyDtoHAsync(&out, device_word, sizeof out, stream_);
  if (r == CUDA_SUCCESS) r = api.cuStreamSynchronize(stream_);
  return r;
}

CUresult CompressedStore::ensure_words() noexcept {
  if (words_) return CUDA_SUCCESS;
  CUdeviceptr p = 0;
  const CUresult r = store_alloc(&p, 16);
  if (r == CUDA_SUCCESS) words_ = UniqueDeviceMemory(p);
  return r;
}

bool CompressedStore::release_reserve(CUstream idle) noexcept {
  // Held or not (it became a store, or never was), nothing may name it after.
  const bool held = static_cast<bool>(reserve_);
  if (held && !free_store_now(reserve_, idle)) reserve_.reset();
  reserve_bytes_ = 0;
  reserve_address_ = 0;
  return held;
}

CUresult CompressedStore::hash(CUdeviceptr data, size_t bytes, uint64_t& out) noexcept {
  CUresult r = ensure_words();
  if (r != CUDA_SUCCESS) return r;
  r = codec_.hash(stream_, data, bytes, words_.get() + 8);
  if (r != CUDA_SUCCESS) return r;
  return read_u64(words_.get() + 8, out);
}

void CompressedStore::ensure_reserve(size_t bytes) noexcept {
  if (reserve_bytes_ >= bytes) return;
  CUdeviceptr p = 0;
  if (store_alloc(&p, bytes) != CUDA_SUCCESS) return;
  reserve_ = UniqueDeviceMemory(p);  // a smaller one before is freed
  reserve_bytes_ = bytes;
  reserve_address_ = p;
  log(LogLevel::kDebug, "memory is short: {} bytes reserved for encoding", bytes);
}

CompressOutcome CompressedStore::encode_once(CUdeviceptr src, size_t bytes, const nz_options& opts,
                                             UniqueDeviceMemory& buffer, size_t& out_len, size_t size_hint,
                                             bool& hinted) noexcept {
  hinted = false;
  const size_t element_size = nz_dtype_size(opts.dtype);
  if (element_size == 0 || bytes % element_size != 0) return CompressOutcome::kFailed;
  const uint64_t count = bytes / element_size;
  const size_t full_bound = nz_compress_bound(count, &opts);
  // A buffer of the size the caller expects: the encode writes 0 as its
  // length if it does not fit, and then it is done again with the bound.
  if (size_hint >= NZ_HEADER_BYTES && size_hint < full_bound) {
    const CompressOutcome o = encode_into(src, count, opts, size_hint, buffer, out_len);
    if (o == CompressOutcome::kStored) {
      // In the reserve it is copied out as any result there (the reserve keeps its role).
      hinted = !(reserve_bytes_ > 0 && buffer.get() == reserve_address_);
      return o;
    }
    if (o != CompressOutcome::kFailed) return o;
    log(LogLevel::kDebug, "encode of {} bytes did not fit the {} expected: again with the bound", bytes, size_hint);
  }
  return encode_into(src, count, opts, full_bound, buffer, out_len);
}

CompressOutcome CompressedStore::encode_into(CUdeviceptr src, uint64_t count, const nz_options& opts, size_t bound,
                                             UniqueDeviceMemory& buffer, size_t& out_len) noexcept {
  const size_t bytes = count * nz_dtype_size(opts.dtype);
  const size_t workspace_bytes = codec_.encode_workspace_bytes(count, opts);
  if (ensure_words() != CUDA_SUCCESS) return CompressOutcome::kNoMemory;
  log(LogLevel::kDebug, "encode {} bytes: bound {}, workspace {}", bytes, bound, workspace_bytes);
  CUdeviceptr dst = 0, workspace = 0;
  UniqueDeviceMemory dst_owner;
  if (store_alloc(&dst, bound) == CUDA_SUCCESS) {
    dst_owner = UniqueDeviceMemory(dst);
  } else if (reserve_ && bound <= reserve_bytes_) {
    // Out of memory: encode into the reserve (the caller copies the result
    // into an exact-size store and lets the reserve go back to this role).
    dst = reserve_.get();
    dst_owner = std::move(reserve_);
  } else {
    return CompressOutcome::kNoMemory;
  }
  UniqueDeviceMemory workspace_owner;
  if (workspace_bytes > 0) {
    if (store_alloc(&workspace, workspace_bytes) != CUDA_SUCCESS) {
      // The reserve (if that is the output) goes back to its role, not freed
      // with dst_owner: freed, it left reserve_address_ naming memory the
      // pool could hand out again as an ordinary buffer.
      give_back_reserve(dst_owner);
      return CompressOutcome::kNoMemory;
    }
    workspace_owner = UniqueDeviceMemory(workspace);
  }
  CUresult r = codec_.encode(stream_, src, count, opts, dst, bound, words_.get(), workspace, workspace_bytes);
  uint64_t len = 0;
  if (r == CUDA_SUCCESS) r = read_u64(words_.get(), len);
  if (r != CUDA_SUCCESS || len == 0 || len > bound) {
    if (r != CUDA_SUCCESS) log(LogLevel::kInfo, "encode of {} bytes failed: {}", bytes, error_name(r));
    give_back_reserve(dst_owner);
    return CompressOutcome::kFailed;
  }
  buffer = std::move(dst_owner);
  out_len = len;
  return CompressOutcome::kStored;
}

bool CompressedStore::check_header(const uint8_t* copy, size_t available, size_t len, size_t original,
                                   std::vector<uint8_t>& header) noexcept {
  if (len < NZ_HEADER_BYTES || available < NZ_HEADER_BYTES) return false;
  if (load_le<uint32_t>(copy) != 0x50495A4Eu || load_le<uint64_t>(copy + 40) != len) return false;
  const uint64_t elements = load_le<uint64_t>(copy + 8);
  const size_t element_size = nz_dtype_size(static_cast<nz_dtype>(copy[6]));
  if (element_size == 0 || elements * element_size != original) return false;
  const uint64_t payload_offset =
      NZ_HEADER_BYTES + uint64_t{load_le<uint32_t>(copy + 28)} + 24ull * load_le<uint32_t>(copy + 24);
  if (payload_offset > len || payload_offset > available) return false;
  try {
    header.assign(copy, copy + payload_offset);
  } catch (...) {
    return false;
  }
  // The header checksum covers [0, payload_offset) with its own field read as 0.
  const uint64_t expected = load_le<uint64_t>(header.data() + 48);
  std::memset(header.data() + 48, 0, 8);
  const bool ok = nz_hash(header.data(), header.size()) == expected;
  std::memcpy(header.data() + 48, &expected, 8);
  return ok;
}

bool CompressedStore::validate_header(CUdeviceptr data, size_t len, size_t original,
                                      std::vector<uint8_t>& header) noexcept {
  const auto& api = driver().base;
  if (len < NZ_HEADER_BYTES) return false;
  uint8_t head[NZ_HEADER_BYTES];
  if (api.cuMemcpyDtoHAsync(head, data, sizeof head, stream_) != CUDA_SUCCESS ||
      api.cuStreamSynchronize(stream_) != CUDA_SUCCESS) {
    return false;
  }
  if (load_le<uint32_t>(head) != 0x50495A4Eu || load_le<uint64_t>(head + 40) != len) return false;
  const uint64_t payload_offset =
      NZ_HEADER_BYTES + uint64_t{load_le<uint32_t>(head + 28)} + 24ull * load_le<uint32_t>(head + 24);
  if (payload_offset > len) return false;
  std::vector<uint8_t> copy;
  try {
    copy.resize(payload_offset);
  } catch (...) {
    return false;
  }
  if (api.cuMemcpyDtoHAsync(copy.data(), data, payload_offset, stream_) != CUDA_SUCCESS ||
      api.cuStreamSynchronize(stream_) != CUDA_SUCCESS) {
    return false;
  }
  return check_header(copy.data(), copy.size(), len, original, header);
}

bool CompressedStore::lossy_for(int tag_dtype, const Config& config) noexcept {
  return config.mode == NZ_LOSSY && is_float_tag(tag_dtype);
}

CompressOutcome CompressedStore::encode_best(CUdeviceptr src, size_t bytes, int tag_dtype, const Config& config,
                                             UniqueDeviceMemory& best, size_t& best_len, size_t size_hint,
                                             int hint_dtype, bool& hinted) noexcept {
  hinted = false;
  const bool lossy = lossy_for(tag_dtype, config);
  // Unknown content: try bf16 first (most weights), then fp32; keep the smaller.
  // Untyped bytes encoded before start with the type that won then, and the
  // hint (that encoding's size) applies to it: a rewritten bf16 weight is
  // encoded into a buffer of about its store's size, not the bound (the
  // eviction's transient peak: +2.1 MB per 2 MiB unit instead of ~1.4).
  nz_dtype candidates[2] = {NZ_BF16, NZ_FP32};
  size_t candidate_count = 2;
  if (is_float_tag(tag_dtype)) {
    candidates[0] = static_cast<nz_dtype>(tag_dtype);  // NZ_TAG_* equal nz_dtype values
    candidate_count = 1;
  } else if (hint_dtype == NZ_FP32) {
    std::swap(candidates[0], candidates[1]);
  }
  const bool hint_applies = !lossy && (candidate_count == 1 || hint_dtype == candidates[0]);
  CompressOutcome last = CompressOutcome::kFailed;
  for (size_t i = 0; i < candidate_count; ++i) {
    const nz_options opts = config.codec_options(candidates[i], lossy);
    UniqueDeviceMemory buffer;
    size_t len = 0;
    bool fit_hint = false;
    // The hint is the size of one earlier encoding of this range: it applies
    // to its element type only (a float tag has no other candidate).
    last = encode_once(src, bytes, opts, buffer, len, i == 0 && hint_applies ? size_hint : 0, fit_hint);
    if (last != CompressOutcome::kStored) continue;
    if (!best || len < best_len) {
      give_back_reserve(best);
      best = std::move(buffer);
      best_len = len;
      hinted = fit_hint;
    } else {
      give_back_reserve(buffer);
    }
    if (best_len <= kGoodEnough * static_cast<double>(bytes)) break;
  }
  if (!best) return last;
  if (static_cast<double>(best_len) > kPoorRatio * static_cast<double>(bytes)) {
    give_back_reserve(best);
    return CompressOutcome::kPoorRatio;
  }
  return CompressOutcome::kStored;
}

CompressOutcome CompressedStore::compress(CUdeviceptr src, size_t bytes, int tag_dtype,
                                          const Config& config, StoredRange& out, size_t size_hint,
                                          int hint_dtype) noexcept {
  const auto& api = driver().base;
  const bool lossy = lossy_for(tag_dtype, config);
  UniqueDeviceMemory best;
  size_t best_len = 0;
  bool hinted = false;
  const CompressOutcome encoded = encode_best(src, bytes, tag_dtype, config, best, best_len, size_hint, hint_dtype, hinted);
  if (encoded != CompressOutcome::kStored) return encoded;
  ReserveReturn reserve_return{*this, best};

  // Move the result into a buffer of its exact size; the bound-sized one goes.
  // A buffer of the expected size is kept as it is (no second buffer, no copy).
  StoredRange result;
  if (hinted) {
    result.data = std::move(best);
  } else {
    CUdeviceptr store = 0;
    if (store_alloc(&store, best_len) != CUDA_SUCCESS) return CompressOutcome::kNoMemory;
    UniqueDeviceMemory store_owner(store);
    if (api.cuMemcpyDtoDAsync(store, best.get(), best_len, stream_) != CUDA_SUCCESS) return CompressOutcome::kFailed;
    result.data = std::move(store_owner);
  }
  result.bytes = best_len;
  result.original_bytes = bytes;
  if (!validate_header(result.data.get(), best_len, bytes, result.header)) {
    log(LogLevel::kError, "compressed header of a {}-byte range failed validation; range stays resident", bytes);
    return CompressOutcome::kFailed;
  }
  give_back_reserve(best);
  best.reset();
  if (lossy && decode(result, stream_, src) != CUDA_SUCCESS) return CompressOutcome::kFailed;
  if (hash(src, bytes, result.hash) != CUDA_SUCCESS) return CompressOutcome::kFailed;
  out = std::move(result);
  return CompressOutcome::kStored;
}

CompressOutcome CompressedStore::compress_releasing(CUdeviceptr src, size_t bytes, int tag_dtype,
                                                    const Config& config, uint64_t known_hash,
                                                    SourceRelease release, StoredRange& out,
                                                    size_t size_hint, int hint_dtype) noexcept {
  const auto& api = driver().base;
  if (lossy_for(tag_dtype, config)) return CompressOutcome::kFailed;
  UniqueDeviceMemory best;
  size_t best_len = 0;
  bool hinted = false;
  const CompressOutcome encoded = encode_best(src, bytes, tag_dtype, config, best, best_len, size_hint, hint_dtype, hinted);
  if (encoded != CompressOutcome::kStored) return encoded;
  ReserveReturn reserve_return{*this, best};
  StoredRange result;
  result.bytes = best_len;
  result.original_bytes = bytes;
  result.hash = known_hash;
  // Checked in the encode buffer, before the source goes (the encode was
  // waited for: encode_once read its length back on this stream).
  if (!validate_header(best.get(), best_len, bytes, result.header)) {
    log(LogLevel::kError, "compressed header of a {}-byte range failed validation; range stays resident", bytes);
    return CompressOutcome::kFailed;
  }
  if (release.fn != nullptr) release.fn(release.context);
  CUdeviceptr store = 0;
  if (!hinted && store_alloc(&store, best_len) == CUDA_SUCCESS) {
    UniqueDeviceMemory store_owner(store);
    if (api.cuMemcpyDtoDAsync(store, best.get(), best_len, stream_) == CUDA_SUCCESS &&
        api.cuStreamSynchronize(stream_) == CUDA_SUCCESS) {
      result.data = std::move(store_owner);
    }
  }
  if (!result.data) {
    // The encode buffer is the only copy now: it becomes the store.
    if (best.get() == reserve_address_) {
      reserve_bytes_ = 0;
      reserve_address_ = 0;
    }
    result.data = std::move(best);
  }
  out = std::move(result);
  return CompressOutcome::kStored;
}

bool HostStoreCopy::settle() noexcept {
  if (!copied) return true;
  const bool ok = event_done(copied) || driver().base.cuEventSynchronize(copied->get()) == CUDA_SUCCESS;
  copied.reset();
  return ok;
}

CUdeviceptr CompressedStore::source(const StoredRange& stored) noexcept {
  if (stored.data || !stored.host_copy.slot) return stored.data.get();
  return stored.host_copy.slot->device();
}

size_t CompressedStore::source_bytes(const StoredRange& stored) noexcept {
  return stored.data || !stored.host_copy.slot ? stored.bytes : stored.host_copy.bytes;
}

CUresult CompressedStore::decode(const StoredRange& stored, CUstream stream, CUdeviceptr dst) noexcept {
  return codec_.decode(stream, source(stored), source_bytes(stored), dst, stored.original_bytes, status_word_);
}

CUresult CompressedStore::decode_batch(std::span<const DecodeTarget> targets, CUstream stream,
                                       uint64_t& launches) noexcept {
  gpu::DeviceCodec::DecodeJob jobs[gpu::DeviceCodec::kMaxBatch];
  for (size_t first = 0; first < targets.size(); first += gpu::DeviceCodec::kMaxBatch) {
    const size_t n = std::min(targets.size() - first, gpu::DeviceCodec::kMaxBatch);
    for (size_t i = 0; i < n; ++i) {
      const DecodeTarget& t = targets[first + i];
      jobs[i] = {source(*t.stored), source_bytes(*t.stored), t.dst, t.stored->original_bytes};
    }
    const CUresult r = codec_.decode_batch(stream, std::span(jobs, n), status_word_);
    if (r != CUDA_SUCCESS) return r;
    ++launches;
  }
  return CUDA_SUCCESS;
}

}  // namespace nz::rt
