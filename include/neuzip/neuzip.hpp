// neuzip.hpp: a thin C++20 layer over the C API of neuzip.h. No exceptions:
// every call returns a status (or a result carrying one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "neuzip/neuzip.h"

namespace nz {

using Status = nz_status;
using Dtype = nz_dtype;
using Info = nz_info;

// Encoder options with the library defaults (lossless, 64 Ki chunks, P = 11).
struct Options {
  Dtype dtype = NZ_BF16;
  nz_mode mode = NZ_LOSSLESS;
  uint32_t kept_bits = 0;
  uint32_t block_size = 0;
  uint32_t chunk_elems = NZ_DEFAULT_CHUNK_ELEMS;
  uint32_t prob_bits = NZ_DEFAULT_PROB_BITS;
  uint32_t threads = 0;

  static Options lossless(Dtype dtype) { return Options{.dtype = dtype}; }
  static Options lossy(Dtype dtype, uint32_t kept_bits, uint32_t block_size = NZ_DEFAULT_BLOCK) {
    return Options{.dtype = dtype, .mode = NZ_LOSSY, .kept_bits = kept_bits, .block_size = block_size};
  }

  nz_options to_c() const {
    nz_options o{};
    o.dtype = dtype;
    o.mode = mode;
    o.kept_bits = kept_bits;
    o.block_size = block_size;
    o.chunk_elems = chunk_elems;
    o.prob_bits = prob_bits;
    o.threads = threads;
    return o;
  }
};

struct Compressed {
  Status status = NZ_OK;
  std::vector<std::byte> bytes;  // empty unless status == NZ_OK
  bool ok() const { return status == NZ_OK; }
};

inline std::string_view error_string(Status s) { return nz_error_string(s); }

inline size_t compress_bound(uint64_t element_count, const Options& opts) {
  nz_options o = opts.to_c();
  return nz_compress_bound(element_count, &o);
}

// Compresses `src` (a whole number of elements of opts.dtype) into a new vector.
inline Compressed compress(std::span<const std::byte> src, const Options& opts) {
  Compressed out;
  const size_t elem = nz_dtype_size(opts.dtype);
  if (elem == 0 || src.size() % elem != 0) {
    out.status = NZ_ERR_INVALID_ARGUMENT;
    return out;
  }
  const uint64_t n = src.size() / elem;
  nz_options o = opts.to_c();
  const size_t bound = nz_compress_bound(n, &o);
  if (bound == 0) {
    out.status = NZ_ERR_INVALID_ARGUMENT;
    return out;
  }
  try {
    out.bytes.resize(bound);
  } catch (...) {
    out.status = NZ_ERR_NO_MEMORY;
    return out;
  }
  size_t len = 0;
  out.status = nz_compress(src.data(), n, &o, out.bytes.data(), out.bytes.size(), &len);
  out.bytes.resize(out.status == NZ_OK ? len : 0);
  return out;
}

// Validates the header and tables and describes the buffer.
inline Status inspect(std::span<const std::byte> src, Info& info) {
  return nz_inspect(src.data(), src.size(), &info);
}

// Decompresses into `dst` (at least info.original_bytes). When `expected`
// is given, a buffer of another dtype is NZ_ERR_DTYPE_MISMATCH.
inline Status decompress(std::span<const std::byte> src, std::span<std::byte> dst, uint32_t threads = 0,
                         Dtype expected = static_cast<Dtype>(0)) {
  if (expected != 0) {
    Info info{};
    if (Status s = inspect(src, info); s != NZ_OK) return s;
    if (info.dtype != expected) return NZ_ERR_DTYPE_MISMATCH;
  }
  return nz_decompress(src.data(), src.size(), dst.data(), dst.size(), threads);
}

// Decompresses into a new vector sized from the header.
inline Status decompress(std::span<const std::byte> src, std::vector<std::byte>& out, uint32_t threads = 0) {
  Info info{};
  if (Status s = inspect(src, info); s != NZ_OK) return s;
  try {
    out.resize(info.original_bytes);
  } catch (...) {
    return NZ_ERR_NO_MEMORY;
  }
  return nz_decompress(src.data(), src.size(), out.data(), out.size(), threads);
}

inline uint64_t hash(std::span<const std::byte> data) { return nz_hash(data.data(), data.size()); }

}  // namespace nz
