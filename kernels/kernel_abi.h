// kernel_abi.h: the launch contract between the host backends (src/gpu) and
// the kernels (CUDA in kernels/*.cu, host kernels in kernels/sim).
//
// Every kernel takes exactly one parameter: one of the argument structs below,
// by value. One struct keeps host and device in agreement on layout (it is
// compiled by both g++ and nvcc) and lets the simulator module reuse it.
// Addresses are plain u64 (a CUdeviceptr) so the struct has no pointers whose
// size or meaning differ between host and device code.
#pragma once

#include <stdint.h>

namespace nz::kernels {

// Names looked up with cuModuleGetFunction (extern "C" on the device side).
inline constexpr const char* kDecodeKernel = "nz_decode_kernel";
inline constexpr const char* kDecodeBatchKernel = "nz_decode_batch_kernel";
inline constexpr const char* kHashKernel = "nz_hash_kernel";
inline constexpr const char* kGuardBatchKernel = "nz_guard_batch_kernel";
inline constexpr const char* kEncodeAnalyseKernel = "nz_encode_analyse_kernel";
inline constexpr const char* kEncodeTableKernel = "nz_encode_table_kernel";
inline constexpr const char* kEncodeRansKernel = "nz_encode_rans_kernel";
inline constexpr const char* kEncodeLayoutKernel = "nz_encode_layout_kernel";
inline constexpr const char* kEncodeEmitKernel = "nz_encode_emit_kernel";
// The simulator module runs the whole encoder in one host kernel.
inline constexpr const char* kSimEncodeKernel = "nz_encode_kernel";

// Decode threads: several warps per block, each warp owns one chunk at a time
// and strides over the chunks (the grid is sized by the host from the SM
// count, since the host does not know the chunk count without reading the
// header back).
inline constexpr unsigned kDecodeWarpsPerBlock = 4;
inline constexpr unsigned kEncodeWarpsPerBlock = 4;
inline constexpr unsigned kHashThreads = 256;
inline constexpr unsigned kLayoutThreads = 256;

struct DecodeArgs {
  uint64_t src;      // the neuzip buffer (device)
  uint64_t src_len;  // bytes available at src
  uint64_t dst;      // output (device)
  uint64_t dst_cap;  // bytes available at dst
  uint64_t status;   // device u32: first nz_status found, written before a trap
};

// A batched decode: the staging of a run of ranges (one store per 2 MiB unit)
// in ONE launch. The jobs travel by value in the parameter buffer (no device
// descriptor to allocate or copy on the launch path): 64 jobs of 32 bytes are
// 2 KiB, inside the 4 KiB every architecture accepts. Blocks are dealt out
// per job: job = blockIdx.x / blocks_per_job, and each job's blocks stride
// over its chunks as a single decode's grid does.
inline constexpr unsigned kMaxDecodeBatch = 64;

struct DecodeJob {
  uint64_t src;      // a complete neuzip buffer (device)
  uint64_t src_len;
  uint64_t dst;      // output (device)
  uint64_t dst_cap;
};

struct DecodeBatchArgs {
  uint32_t count;           // jobs used, 1..kMaxDecodeBatch
  uint32_t blocks_per_job;  // grid = count * blocks_per_job
  uint64_t status;          // as DecodeArgs::status
  DecodeJob jobs[kMaxDecodeBatch];
};

struct HashArgs {
  uint64_t data;  // device bytes
  uint64_t len;
  uint64_t out;   // device u64; the host zeroes it before the launch (CUDA path)
};

// The change test of a staged range handed over to another range's staging
// while the device may still use it (docs/RUNTIME.md, "Handovers"): after its
// last use and before the pages are decoded into again, each job's bytes are
// hashed. One block per job; the jobs travel by value like a decode batch's.
//
// kGuardCompare: equal to `expected`, the range is unchanged (its store still
// holds it) and the job writes kGuardUnchanged to its flag; else it copies the
// bytes to `rescue` (host memory mapped for the device) first and writes
// kGuardRescued.
//
// kGuardEncoded (an encode handover: a rewritten range, re-encoded on the
// device): the encode ran before the guard on the same stream, into `store`
// (capacity `store_cap`), and wrote its length to result[0]. The guard writes
// the bytes' hash to result[1]; if the encoding is whole (length non-zero and
// within the capacity, magic and length in its header agree, header and
// tables within `header_cap`) it copies header and tables to the bytes after
// result[1] and writes kGuardStored; else it rescues the bytes as above.
// kGuardEncodedOrSame: as kGuardEncoded, but a hash equal to `expected` writes
// kGuardUnchanged first (the old store is still valid; the encoding unused).
struct GuardJob {
  uint64_t data;      // the staged range (device)
  uint64_t len;
  uint64_t expected;  // nz_hash of what its store decodes to
  uint64_t rescue;    // len bytes (device-visible host memory)
  uint64_t store;     // encode handovers: the encoding (device)
  uint64_t result;    // encode handovers: u64 length, u64 hash, header copy (device-visible host memory)
  uint32_t store_cap;
  uint32_t header_cap;
  uint32_t mode;      // kGuardCompare, kGuardEncoded, kGuardEncodedOrSame
  uint32_t reserved;
};

// 64-byte jobs: 32 of them keep the parameters within 4 KiB.
inline constexpr unsigned kMaxGuardBatch = 32;
struct GuardBatchArgs {
  uint32_t count;     // jobs used, 1..kMaxGuardBatch
  uint32_t reserved;
  uint64_t flags;     // u32[count] (device-visible host memory): kGuard{Unchanged,Rescued,Stored}
  GuardJob jobs[kMaxGuardBatch];
};
inline constexpr unsigned kGuardThreads = 256;
inline constexpr uint32_t kGuardCompare = 0;
inline constexpr uint32_t kGuardEncoded = 1;
inline constexpr uint32_t kGuardEncodedOrSame = 2;
inline constexpr uint32_t kGuardRescued = 1;
inline constexpr uint32_t kGuardUnchanged = 2;
inline constexpr uint32_t kGuardStored = 3;
// Where the header copy starts in an encode handover's result words.
inline constexpr uint32_t kGuardResultHeader = 16;

#if defined(__CUDACC__)
#define NZ_GUARD_HD __host__ __device__
#else
#define NZ_GUARD_HD
#endif

// An encode handover's check of the encoding at `p` of `original` bytes
// (whose encode reported `len` bytes in a buffer of `cap`): the bytes of its
// header and tables (what the host keeps of a store) if magic, lengths and
// element count agree and they fit `header_cap`, else 0. The caller checks
// the header checksum over those bytes too (guard.cuh, the simulator module)
// before the range's pages may go, and the host validates them again when it
// adopts the store.
NZ_GUARD_HD inline uint64_t guard_header_bytes(const uint8_t* p, uint64_t len, uint64_t cap, uint32_t header_cap,
                                               uint64_t original) {
  constexpr uint64_t kHeader = 64;  // NZ_HEADER_BYTES
  if (len < kHeader || len > cap) return 0;
  auto le = [p](unsigned at, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= uint64_t{p[at + i]} << (8 * i);
    return v;
  };
  const uint64_t dtype = le(6, 1), element = dtype == 3 ? 4 : dtype == 1 || dtype == 2 ? 2 : 0;  // nz_dtype
  if (le(0, 4) != 0x50495A4Eu || le(40, 8) != len || element == 0 || le(8, 8) * element != original) return 0;
  const uint64_t header = kHeader + le(28, 4) + 24 * le(24, 4);
  if (header > len || header > header_cap) return 0;
  return header;
}
// The header checksum is at byte 48 and covers [0, header bytes) with itself read as 0.
inline constexpr unsigned kHeaderChecksumAt = 48;

// Byte offsets inside the encoder workspace; computed on the host by
// EncodeLayout (src/gpu/encode_layout.h) and carried to every encode kernel.
struct EncodeWorkspace {
  uint64_t base;            // start of the workspace (device)
  uint64_t bytes;           // its size
  uint64_t hist_off;        // u64[256] global symbol histogram
  uint64_t table_off;       // u32[256]: freq | cum << 16 of each symbol (after normalisation)
  uint64_t control_off;     // EncodeControl
  uint64_t chunk_info_off;  // EncodeChunkInfo[chunk_count]
  uint64_t values_off;      // quantised elements (lossy only), element_count * elem_size
  uint64_t scales_off;      // block scale codes, blocks_per_chunk bytes per chunk (lossy with blocks)
  uint64_t words_off;       // rANS scratch, scratch_words u16 per chunk
  uint64_t scratch_words;   // capacity per chunk (a rANS stream longer than this loses to packing)
};

// Shared encoder state, one per call (in the workspace).
struct EncodeControl {
  uint32_t failed;       // non-zero: the request cannot be honoured, out_len is 0
  uint32_t table_bytes;  // bytes of the frequency table (0 until decided)
  uint32_t present;      // number of present symbols
  uint32_t reserved;
};

// Per-chunk encoder state (in the workspace).
struct EncodeChunkInfo {
  uint32_t states[32];   // final encoder states = initial decoder states
  uint64_t checksum;     // nzhash of the decoded bytes
  uint64_t offset;       // payload offset from payload_offset
  uint32_t words;        // rANS stream length in u16 words
  uint32_t kind;         // 0 rANS, 1 packed
  uint32_t size;         // payload bytes (without padding)
  uint32_t reserved;
};

struct EncodeArgs {
  uint64_t src;            // input elements (device)
  uint64_t element_count;
  uint64_t dst;            // output buffer (device)
  uint64_t dst_cap;
  uint64_t out_len;        // device u64
  uint32_t dtype;          // nz_dtype
  uint32_t mode;           // nz_mode
  uint32_t kept_bits;      // K (M for lossless)
  uint32_t block_log2;     // 0 = no blocks
  uint32_t chunk_elems;
  uint32_t prob_bits;
  uint32_t chunk_count;
  uint32_t threads;        // CPU threads for the simulator's nz_compress
  EncodeWorkspace ws;
};

}  // namespace nz::kernels
