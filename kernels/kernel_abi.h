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
// while the device may still use it (docs/RUNTIME.md, "Handing staging pages
// over on the device"): after its last use and before the pages are decoded
// into again, each job's bytes are hashed; equal to `expected`, the range is
// unchanged (its store still holds it) and the job writes 2 to its flag; else
// it copies the bytes to `rescue` (host memory mapped for the device) first
// and writes 1. One block per job; the jobs travel by value like a decode
// batch's.
struct GuardJob {
  uint64_t data;      // the staged range (device)
  uint64_t len;
  uint64_t expected;  // nz_hash of what its store decodes to
  uint64_t rescue;    // len bytes (device-visible host memory)
};

struct GuardBatchArgs {
  uint32_t count;     // jobs used, 1..kMaxDecodeBatch
  uint32_t reserved;
  uint64_t flags;     // u32[count] (device-visible host memory): 2 unchanged, 1 rescued
  GuardJob jobs[kMaxDecodeBatch];
};
inline constexpr unsigned kGuardThreads = 256;
inline constexpr uint32_t kGuardUnchanged = 2;
inline constexpr uint32_t kGuardRescued = 1;

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
