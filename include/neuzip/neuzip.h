/* neuzip: the compressed format for float weights and its CPU codec.
 *
 * C API. Buffers are owned by the caller; decoding never allocates.
 * The format is specified in docs/FORMAT.md. All functions are thread-safe
 * (they share no state) and never abort on bad input: every problem is an
 * error code, and nz_error_string() says what it means.
 */
#ifndef NEUZIP_NEUZIP_H
#define NEUZIP_NEUZIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NZ_FORMAT_VERSION 1
#define NZ_HEADER_BYTES 64
#define NZ_LANES 32
#define NZ_DEFAULT_CHUNK_ELEMS (1u << 16)
#define NZ_DEFAULT_PROB_BITS 11
#define NZ_DEFAULT_BLOCK 512

typedef enum nz_status {
  NZ_OK = 0,
  NZ_ERR_INVALID_ARGUMENT = 1, /* a null pointer, a bad option, a misaligned size */
  NZ_ERR_DST_TOO_SMALL = 2,    /* the output buffer cannot hold the result */
  NZ_ERR_TRUNCATED = 3,        /* the input ends before the data it declares */
  NZ_ERR_BAD_MAGIC = 4,        /* not a neuzip buffer */
  NZ_ERR_BAD_VERSION = 5,      /* a newer or unknown format version */
  NZ_ERR_CORRUPT_HEADER = 6,   /* header, frequency or chunk table invalid or checksum mismatch */
  NZ_ERR_CORRUPT_CHUNK = 7,    /* a chunk payload is malformed (stream, states, padding) */
  NZ_ERR_CHECKSUM = 8,         /* a chunk decoded to bytes whose checksum does not match */
  NZ_ERR_UNSUPPORTED = 9,      /* valid request this build or mode cannot do (e.g. lossy K=0 with NaN) */
  NZ_ERR_NO_MEMORY = 10,       /* encoder scratch allocation failed */
  NZ_ERR_DTYPE_MISMATCH = 11   /* the caller asked for a dtype other than the buffer's */
} nz_status;

typedef enum nz_dtype { NZ_BF16 = 1, NZ_FP16 = 2, NZ_FP32 = 3 } nz_dtype;
typedef enum nz_mode { NZ_LOSSLESS = 0, NZ_LOSSY = 1 } nz_mode;

/* Encoder options. Zero-initialise, then set what you need; nz_options_default
 * fills the defaults (lossless, 64 Ki-element chunks, P = 11, all threads). */
typedef struct nz_options {
  nz_dtype dtype;
  nz_mode mode;
  uint32_t kept_bits;   /* lossy: mantissa bits kept, 0 <= K < M; ignored when lossless */
  uint32_t block_size;  /* lossy: block normalisation size (power of two), 0 = none */
  uint32_t chunk_elems; /* power of two in [2^10, 2^22]; 0 = default */
  uint32_t prob_bits;   /* 8..15; 0 = default */
  uint32_t threads;     /* 0 = all hardware threads, 1 = single-threaded */
} nz_options;

/* What a header says (after full validation of header and tables). */
typedef struct nz_info {
  nz_dtype dtype;
  nz_mode mode;
  uint64_t element_count;
  uint64_t original_bytes;
  uint64_t compressed_bytes; /* total_bytes of the buffer */
  uint32_t chunk_elems;
  uint32_t chunk_count;
  uint32_t kept_bits;
  uint32_t block_size; /* 0 = none */
  uint32_t prob_bits;
  uint32_t coded_chunks;  /* chunks of kind rANS */
  uint32_t packed_chunks; /* chunks of kind packed */
} nz_info;

void nz_options_default(nz_options* opts, nz_dtype dtype);

/* Size in bytes of an element of this dtype (0 for an unknown dtype). */
size_t nz_dtype_size(nz_dtype dtype);

/* Largest possible compressed size for `element_count` elements. */
size_t nz_compress_bound(uint64_t element_count, const nz_options* opts);

/* Compress `element_count` elements at `src` into `dst` (capacity `dst_cap`).
 * On success *dst_len is the compressed size. The encoder may allocate
 * scratch memory (it reports NZ_ERR_NO_MEMORY if that fails). */
nz_status nz_compress(const void* src, uint64_t element_count, const nz_options* opts,
                      void* dst, size_t dst_cap, size_t* dst_len);

/* Validate the header, frequency table and chunk table of `src` and describe it. */
nz_status nz_inspect(const void* src, size_t src_len, nz_info* info);

/* Decompress into `dst` (capacity `dst_cap` bytes, at least original_bytes).
 * `threads`: 0 = all hardware threads, 1 = the calling thread only. Never allocates
 * except for worker threads when threads != 1. Every chunk's checksum is verified. */
nz_status nz_decompress(const void* src, size_t src_len, void* dst, size_t dst_cap,
                        uint32_t threads);

/* nzhash of a byte range (docs/FORMAT.md section 5). */
uint64_t nz_hash(const void* data, size_t len);

/* A static, human-readable description of a status code. */
const char* nz_error_string(nz_status status);

/* The instruction-set level the CPU codec's hot loops run at: "scalar",
 * "avx2" or "avx512". Every level produces the same bytes. It is the best
 * level this CPU supports unless the environment variable
 * NEUZIP_CPU=scalar|avx2|avx512 (read once, at the codec's first call) asks
 * for another; a level the CPU lacks is replaced by the best supported one,
 * with one line on stderr. */
const char* nz_cpu_level(void);

#ifdef __cplusplus
}
#endif

#endif /* NEUZIP_NEUZIP_H */
