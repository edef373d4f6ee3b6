// encoder.h: whole-buffer compression (nz_compress, nz_compress_bound).
#pragma once

#include <cstddef>
#include <cstdint>

#include "neuzip/neuzip.h"

namespace nz::codec {

// Options with defaults filled in and every field checked.
struct EncodeOptions {
  nz_dtype dtype = NZ_BF16;
  nz_mode mode = NZ_LOSSLESS;
  uint32_t kept_bits = 0;
  uint32_t block_log2 = 0;
  uint32_t chunk_elems = NZ_DEFAULT_CHUNK_ELEMS;
  uint32_t prob_bits = NZ_DEFAULT_PROB_BITS;
  uint32_t threads = 0;
};

nz_status resolve_options(const nz_options* opts, EncodeOptions& out);

// Largest possible compressed size; 0 when the options are invalid.
size_t compress_bound(uint64_t element_count, const EncodeOptions& opts);

nz_status compress(const void* src, uint64_t element_count, const EncodeOptions& opts, void* dst,
                   size_t dst_cap, size_t* dst_len);

}  // namespace nz::codec
