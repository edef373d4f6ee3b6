/* neuzip runtime C API: exported by libneuzip.so (LD_PRELOAD).
 *
 * Callable from any language (Python: ctypes.CDLL(None).nz_tag if the library
 * is preloaded). All functions are thread-safe and return 0 on success or a
 * negative error code (see nz_rt_error_string). When the runtime is not active
 * (NEUZIP=0, no CUDA, or before cuInit) they return NZ_RT_INACTIVE and do nothing. */
#ifndef NEUZIP_RUNTIME_H
#define NEUZIP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NZ_RT_OK 0
#define NZ_RT_INACTIVE (-1)
#define NZ_RT_INVALID (-2)     /* bad pointer, size, or flags */
#define NZ_RT_NOT_MANAGED (-3) /* the range is not in memory the runtime manages */

/* Element type of a tagged range: lossy mode only applies to ranges declared float. */
#define NZ_TAG_BYTES 0 /* unknown content: lossless only */
#define NZ_TAG_BF16 1
#define NZ_TAG_FP16 2
#define NZ_TAG_FP32 3

/* Declare [ptr, ptr+bytes) a weight range: it may be kept compressed while no
 * work uses it. Pages only partly covered by tags are never compressed. */
int nz_tag(uint64_t ptr, size_t bytes, int dtype);
/* Undo nz_tag (the range is decompressed, if needed, and stays resident). */
int nz_untag(uint64_t ptr, size_t bytes);

typedef struct nz_runtime_stats {
  uint64_t bytes_tagged;            /* bytes in tagged ranges now */
  uint64_t bytes_compressible;      /* of which in whole pages that can be compressed */
  uint64_t bytes_original_compressed; /* original size of the ranges held compressed */
  uint64_t bytes_compressed;        /* device bytes the compressed store uses for them */
  uint64_t staging_bytes;           /* staging memory mapped under ranges now */
  uint64_t staging_bytes_peak;
  uint64_t staging_budget;          /* current budget (adapts to free memory by default) */
  uint64_t device_bytes_saved;      /* physical bytes released minus store and staging */
  uint64_t device_bytes_saved_peak;
  uint64_t faults;                  /* launches/copies that had to stage a compressed range */
  uint64_t decompressions;          /* ranges decompressed */
  uint64_t recompressions;          /* changed ranges compressed again */
  uint64_t drops;                   /* unchanged ranges dropped without recompression */
  uint64_t prefetches;              /* decompressions started ahead of use */
  uint64_t launches_seen;
  uint64_t checksum_failures;
  /* Appended in the fourth round (older callers pass a smaller size_bytes): */
  uint64_t vmm_calls;               /* the runtime's own cuMemCreate, cuMemMap, cuMemSetAccess, cuMemUnmap calls */
  uint64_t decode_launches;         /* decode kernels launched */
  uint64_t bytes_decompressed;      /* bytes those decodes wrote */
  uint64_t hook_host_ns;            /* host time spent in launch/copy hooks that touched tracked memory */
  /* Appended in the fifth round: */
  uint64_t hook_wait_ns;            /* of hook_host_ns: waiting for the device (last uses of evicted ranges) */
  uint64_t stagings_ahead;          /* ranges staged before a call needed them (look-ahead, prefetch) */
  uint64_t stagings_on_launch;      /* ranges staged by the launching thread for its own call */
  /* Appended in the sixth round: */
  uint64_t unserved_bytes_peak;     /* device memory passed through, never compressed (peak): the program's own
                                       cuMemCreate handles and cuMemAllocAsync allocations (PyTorch's
                                       expandable_segments:True, backend:cudaMallocAsync) */
  /* Appended in the seventh round: */
  uint64_t stalled_waits;           /* evictions that gave up waiting for a stream blocked on later work
                                       (NEUZIP_WAIT_PATIENCE_MS) and staged over the budget instead */
} nz_runtime_stats;

/* Compress now every tagged range that may be compressed, waiting for the
 * copies that filled it (otherwise this happens at the runtime's next safe
 * point). Useful after loading a model, before sizing caches from free memory. */
int nz_flush(void);
/* Fill *out (size_bytes = sizeof(nz_runtime_stats), for forward compatibility). */
int nz_stats(nz_runtime_stats* out, size_t size_bytes);

const char* nz_rt_error_string(int code);

#ifdef __cplusplus
}
#endif

#endif /* NEUZIP_RUNTIME_H */
