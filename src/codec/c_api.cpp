// c_api.cpp: the extern "C" surface of include/neuzip/neuzip.h. No exception
// leaves these functions.
#include <new>

#include "codec/cpu_level.h"
#include "codec/decoder.h"
#include "codec/dtype.h"
#include "codec/encoder.h"
#include "codec/hash.h"
#include "neuzip/neuzip.h"

extern "C" {

void nz_options_default(nz_options* opts, nz_dtype dtype) {
  if (opts == nullptr) return;
  *opts = nz_options{};
  opts->dtype = dtype;
  opts->mode = NZ_LOSSLESS;
  opts->kept_bits = 0;
  opts->block_size = 0;
  opts->chunk_elems = NZ_DEFAULT_CHUNK_ELEMS;
  opts->prob_bits = NZ_DEFAULT_PROB_BITS;
  opts->threads = 0;
}

size_t nz_dtype_size(nz_dtype dtype) { return nz::codec::dtype_layout(dtype).bytes; }

size_t nz_compress_bound(uint64_t element_count, const nz_options* opts) {
  nz::codec::EncodeOptions o;
  if (nz::codec::resolve_options(opts, o) != NZ_OK) return 0;
  return nz::codec::compress_bound(element_count, o);
}

nz_status nz_compress(const void* src, uint64_t element_count, const nz_options* opts, void* dst,
                      size_t dst_cap, size_t* dst_len) {
  try {
    nz::codec::EncodeOptions o;
    if (nz_status st = nz::codec::resolve_options(opts, o); st != NZ_OK) return st;
    return nz::codec::compress(src, element_count, o, dst, dst_cap, dst_len);
  } catch (const std::bad_alloc&) {
    return NZ_ERR_NO_MEMORY;
  } catch (...) {
    return NZ_ERR_NO_MEMORY;  // thread creation failures and the like
  }
}

nz_status nz_inspect(const void* src, size_t src_len, nz_info* info) {
  return nz::codec::inspect(src, src_len, info);
}

nz_status nz_decompress(const void* src, size_t src_len, void* dst, size_t dst_cap, uint32_t threads) {
  try {
    return nz::codec::decompress(src, src_len, dst, dst_cap, threads, nz::codec::cpu_level());
  } catch (...) {
    return NZ_ERR_NO_MEMORY;
  }
}

uint64_t nz_hash(const void* data, size_t len) {
  if (data == nullptr && len != 0) return 0;
  return nz::codec::nzhash(data, len);
}

const char* nz_cpu_level(void) { return nz::codec::cpu_level_name(nz::codec::cpu_level()); }

const char* nz_error_string(nz_status status) {
  switch (status) {
    case NZ_OK: return "success";
    case NZ_ERR_INVALID_ARGUMENT: return "invalid argument (null pointer, bad option or size)";
    case NZ_ERR_DST_TOO_SMALL: return "destination buffer too small";
    case NZ_ERR_TRUNCATED: return "input ends before the data it declares";
    case NZ_ERR_BAD_MAGIC: return "not a neuzip buffer (bad magic)";
    case NZ_ERR_BAD_VERSION: return "unknown neuzip format version";
    case NZ_ERR_CORRUPT_HEADER: return "corrupt header, frequency table or chunk table";
    case NZ_ERR_CORRUPT_CHUNK: return "corrupt chunk payload (stream, states or padding)";
    case NZ_ERR_CHECKSUM: return "decoded chunk does not match its checksum";
    case NZ_ERR_UNSUPPORTED: return "unsupported request (e.g. lossy K=0 with NaN input)";
    case NZ_ERR_NO_MEMORY: return "out of memory";
    case NZ_ERR_DTYPE_MISMATCH: return "buffer dtype differs from the requested dtype";
  }
  return "unknown status";
}

}  // extern "C"
