// compressed_store.h: compressing a device range into a right-sized device
// buffer, decoding it back, and hashing device bytes, all through the
// DeviceCodec on streams (the runtime's internal stream for compression, the
// user's stream for decodes).
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "gpu/device_codec.h"
#include "neuzip/neuzip.h"
#include "runtime/config.h"
#include "runtime/driver_objects.h"

namespace nz::rt {

class RescueSlot;

// The bytes of a store given up while its range was staged, kept in
// page-locked host memory (Runtime::keep_store_copy): the eviction that finds
// the range unchanged copies them back instead of encoding it again. The
// slot goes back to its pool only once the copy into it completed (waited
// for when this is replaced or destroyed): a slot taken again while an old
// copy still wrote it would hold another range's bytes.
struct HostStoreCopy {
  std::shared_ptr<RescueSlot> slot;  // null: no copy
  SharedEvent copied;                // after the copy from the device (null: complete)
  size_t bytes = 0;

  HostStoreCopy() = default;
  HostStoreCopy(std::shared_ptr<RescueSlot> s, SharedEvent c, size_t b) noexcept
      : slot(std::move(s)), copied(std::move(c)), bytes(b) {}
  HostStoreCopy(HostStoreCopy&&) noexcept = default;
  HostStoreCopy& operator=(HostStoreCopy&& o) noexcept {
    if (this != &o) {
      settle();
      slot = std::move(o.slot);
      copied = std::move(o.copied);
      bytes = o.bytes;
    }
    return *this;
  }
  ~HostStoreCopy() { settle(); }
  // Waits for the copy if it is still running; false if that failed (the
  // bytes cannot be known whole).
  bool settle() noexcept;
};

// One compressed range in device memory.
struct StoredRange {
  UniqueDeviceMemory data;
  size_t bytes = 0;            // compressed size
  size_t original_bytes = 0;
  uint64_t hash = 0;           // nz_hash of the content a decode reproduces
  std::vector<uint8_t> header; // host copy of header + tables, validated
  HostStoreCopy host_copy;      // its bytes in page-locked host memory: while `data` is given up, and kept
                                // beside it after a restore (store_copies.cpp)
};

enum class CompressOutcome { kStored, kPoorRatio, kNoMemory, kFailed };

class CompressedStore {
 public:
  // `status_word`: a device-visible u32 (host-pinned, so readable after a trap).
  CompressedStore(gpu::DeviceCodec& codec, CUstream internal, CUdeviceptr status_word)
      : codec_(codec), stream_(internal), status_word_(status_word) {}

  // Compresses [src, src + bytes) (its producers must be complete or ordered
  // before `internal` by the caller). Waits on the internal stream (host).
  // Lossy options apply only when `dtype` is a float tag and config says lossy;
  // then the range is rewritten in place with its lossy decode so that the
  // stored hash describes what later decodes produce.
  // `size_hint`: the compressed size expected (an earlier encoding of this
  // range: exact for the same content, close for a rewritten weight). The
  // encode then goes into a buffer of that size, which becomes the store
  // (no bound-sized buffer, no copy); if the result does not fit, it is
  // encoded again with the bound. 0: no expectation. `hint_dtype`: the
  // nz_dtype that earlier encoding used (for untyped bytes, tried first and
  // the only one the hint applies to; 0: unknown).
  CompressOutcome compress(CUdeviceptr src, size_t bytes, int tag_dtype, const Config& config,
                           StoredRange& out, size_t size_hint = 0, int hint_dtype = 0) noexcept;

  // Called once the encoding no longer needs the source (see below).
  struct SourceRelease {
    void (*fn)(void* context) = nullptr;
    void* context = nullptr;
  };
  // Lossless re-encoding of a staged range whose hash is already known, for
  // eviction under memory pressure: after the encode (and the header check)
  // `release` gives the source's pages back before the exact-size store is
  // allocated, so the staged range and its new store never coexist. From
  // then on the data lives only in the encode buffer, so nothing may fail:
  // without memory for an exact-size copy, the bound-sized buffer itself
  // becomes the store (if that is the reserve, a new reserve is taken at the
  // next pressure). `out.hash` is `known_hash`. Not for lossy float ranges
  // (their stored hash describes the lossy decode): use compress().
  CompressOutcome compress_releasing(CUdeviceptr src, size_t bytes, int tag_dtype, const Config& config,
                                     uint64_t known_hash, SourceRelease release, StoredRange& out,
                                     size_t size_hint = 0, int hint_dtype = 0) noexcept;
  // Checks a host copy of an encoding's header and tables (`available`
  // bytes of it) for an encoding of `len` bytes of `original` bytes: magic,
  // sizes, header checksum. On success `header` holds them (a store's host copy).
  static bool check_header(const uint8_t* copy, size_t available, size_t len, size_t original,
                           std::vector<uint8_t>& header) noexcept;
  // check_header on the encoding's own bytes in device memory (read back on
  // the internal stream, waited for).
  bool validate_header(CUdeviceptr data, size_t len, size_t original, std::vector<uint8_t>& header) noexcept;
  // Whether compress() of this dtype under `config` is lossy.
  static bool lossy_for(int tag_dtype, const Config& config) noexcept;

  // Where a decode reads `stored`: its device memory, or, while its store
  // lives only in page-locked host memory (a device short of memory:
  // store_copies.cpp), that copy, which the device reads at its host
  // address (unified addressing). The copy must be complete.
  static CUdeviceptr source(const StoredRange& stored) noexcept;
  static size_t source_bytes(const StoredRange& stored) noexcept;
  // Enqueues a decode of `stored` into `dst` on `stream`.
  CUresult decode(const StoredRange& stored, CUstream stream, CUdeviceptr dst) noexcept;
  // One ranges' decode of a batch: its store and where it goes.
  struct DecodeTarget {
    const StoredRange* stored;
    CUdeviceptr dst;
  };
  // Enqueues the decode of every target on `stream` in as few launches as the
  // codec allows (one per DeviceCodec::kMaxBatch targets); adds the launches
  // made to `launches`.
  CUresult decode_batch(std::span<const DecodeTarget> targets, CUstream stream, uint64_t& launches) noexcept;

  // nz_hash of device bytes, waited for on the internal stream.
  CUresult hash(CUdeviceptr data, size_t bytes, uint64_t& out) noexcept;

  CUstream internal_stream() const noexcept { return stream_; }

  // Keeps `bytes` of device memory aside as the encode output buffer for when
  // memory is short: recompressing a changed range under pressure must not
  // depend on finding a free bound-sized buffer. Taken when free memory first
  // runs low (while it still can be), so a device with room never pays for it.
  void ensure_reserve(size_t bytes) noexcept;
  // Frees the reserve (not while an encode holds it), its memory given back
  // to the device at once through `idle` (free_store_now). True if it went.
  bool release_reserve(CUstream idle) noexcept;
  size_t reserve_bytes() const noexcept { return reserve_bytes_; }

 private:
  // Encodes with each candidate element type; the smallest result in `best`.
  // kPoorRatio (and nothing in `best`) when even that saves too little.
  // `hinted`: the result is in a buffer of `size_hint` bytes (not the bound).
  CompressOutcome encode_best(CUdeviceptr src, size_t bytes, int tag_dtype, const Config& config,
                              UniqueDeviceMemory& best, size_t& best_len, size_t size_hint, int hint_dtype,
                              bool& hinted) noexcept;
  CompressOutcome encode_once(CUdeviceptr src, size_t bytes, const nz_options& opts, UniqueDeviceMemory& buffer,
                              size_t& out_len, size_t size_hint, bool& hinted) noexcept;
  // One encode into a new buffer of `capacity` bytes (or the reserve, when
  // no memory is left and it is large enough). kFailed: it did not fit.
  CompressOutcome encode_into(CUdeviceptr src, uint64_t count, const nz_options& opts, size_t capacity,
                              UniqueDeviceMemory& buffer, size_t& out_len) noexcept;
  CUresult read_u64(CUdeviceptr device_word, uint64_t& out) noexcept;
  // If `buffer` is the reserve, takes it back (the internal stream is done with it
  // once the caller waited on it; every use here is followed by such a wait).
  void give_back_reserve(UniqueDeviceMemory& buffer) noexcept {
    if (buffer && reserve_bytes_ > 0 && !reserve_) {
      if (buffer.get() == reserve_address_) reserve_ = std::move(buffer);
    }
  }
  // Whatever happens after an encode, the reserve (if it holds the result)
  // returns to its role when this goes out of scope.
  struct ReserveReturn {
    CompressedStore& self;
    UniqueDeviceMemory& buffer;
    ~ReserveReturn() { self.give_back_reserve(buffer); }
  };
  // Allocates words_ on first use.
  CUresult ensure_words() noexcept;

  gpu::DeviceCodec& codec_;
  CUstream stream_;
  CUdeviceptr status_word_;
  UniqueDeviceMemory words_;  // two u64 result words for encode length and hash
  UniqueDeviceMemory reserve_;
  size_t reserve_bytes_ = 0;
  CUdeviceptr reserve_address_ = 0;
};

}  // namespace nz::rt
