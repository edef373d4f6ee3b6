// format.cuh: the neuzip v1 layout as seen from a kernel (docs/FORMAT.md §1-2).
#pragma once

#include <stdint.h>

#include "neuzip/neuzip.h"

namespace nz::kernels {

inline constexpr uint32_t kMagic = 0x50495A4Eu;
inline constexpr uint32_t kChunkEntryBytes = 24;
inline constexpr uint32_t kLanes = 32;
inline constexpr uint32_t kRansL = 1u << 16;

// E and M of a dtype; the kernels branch on these at run time once per chunk
// (uniform across the warp), so one kernel serves all dtypes.
struct DtypeShape {
  uint32_t exp_bits;   // E
  uint32_t man_bits;   // M
  uint32_t elem_bytes;
};

__host__ __device__ inline bool shape_of(uint32_t dtype, DtypeShape& s) {
  switch (dtype) {
    case NZ_BF16: s = {8, 7, 2}; return true;
    case NZ_FP16: s = {5, 10, 2}; return true;
    case NZ_FP32: s = {8, 23, 4}; return true;
    default: return false;
  }
}

__host__ __device__ inline uint64_t round_up(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }
__host__ __device__ inline uint64_t pad4(uint64_t x) { return round_up(x, 4); }
__host__ __device__ inline uint64_t packed_bytes(uint64_t n, uint32_t width) { return pad4((n * width + 7) / 8); }

// The header fields a decoder needs, read from device memory.
struct Header {
  uint32_t magic;
  uint32_t version;
  uint32_t dtype;
  uint32_t mode;
  uint64_t element_count;
  uint32_t chunk_elems;
  uint32_t kept_bits;
  uint32_t block_log2;
  uint32_t prob_bits;
  uint32_t lanes;
  uint32_t chunk_count;
  uint32_t table_bytes;
  uint64_t payload_bytes;
  uint64_t total_bytes;
  uint64_t header_checksum;
  uint64_t reserved;
};

__device__ inline Header load_header(const uint8_t* base) {
  Header h;
  const uint32_t* w = reinterpret_cast<const uint32_t*>(base);
  const uint64_t* d = reinterpret_cast<const uint64_t*>(base);
  h.magic = w[0];
  h.version = w[1] & 0xFFFFu;
  h.dtype = (w[1] >> 16) & 0xFFu;
  h.mode = w[1] >> 24;
  h.element_count = d[1];
  h.chunk_elems = w[4];
  h.kept_bits = w[5] & 0xFFu;
  h.block_log2 = (w[5] >> 8) & 0xFFu;
  h.prob_bits = (w[5] >> 16) & 0xFFu;
  h.lanes = w[5] >> 24;
  h.chunk_count = w[6];
  h.table_bytes = w[7];
  h.payload_bytes = d[4];
  h.total_bytes = d[5];
  h.header_checksum = d[6];
  h.reserved = d[7];
  return h;
}

__host__ __device__ inline uint32_t log2_exact(uint32_t v) {
  uint32_t l = 0;
  while ((1u << l) < v) ++l;
  return l;
}

// Every rule of §2.1 that does not need the tables. Returns NZ_OK or the code.
__device__ inline nz_status check_header(const Header& h, uint64_t src_len, uint64_t dst_cap) {
  if (h.magic != kMagic) return NZ_ERR_BAD_MAGIC;
  if (h.version != NZ_FORMAT_VERSION) return NZ_ERR_BAD_VERSION;
  DtypeShape s{};
  if (!shape_of(h.dtype, s) || h.mode > 1) return NZ_ERR_CORRUPT_HEADER;
  uint32_t ce = h.chunk_elems;
  if (ce < (1u << 10) || ce > (1u << 22) || (ce & (ce - 1)) != 0) return NZ_ERR_CORRUPT_HEADER;
  if (h.mode == NZ_LOSSLESS ? h.kept_bits != s.man_bits : h.kept_bits >= s.man_bits) return NZ_ERR_CORRUPT_HEADER;
  if (h.block_log2 != 0 && (h.mode != NZ_LOSSY || h.block_log2 > log2_exact(ce))) return NZ_ERR_CORRUPT_HEADER;
  if (h.prob_bits < 8 || h.prob_bits > 15 || h.lanes != kLanes) return NZ_ERR_CORRUPT_HEADER;
  if (uint64_t(h.chunk_count) != (h.element_count + ce - 1) / ce) return NZ_ERR_CORRUPT_HEADER;
  if (h.table_bytes % 8 != 0 || h.reserved != 0) return NZ_ERR_CORRUPT_HEADER;
  uint64_t payload_offset = NZ_HEADER_BYTES + uint64_t(h.table_bytes) + uint64_t(kChunkEntryBytes) * h.chunk_count;
  if (h.total_bytes != payload_offset + h.payload_bytes || h.total_bytes < payload_offset) return NZ_ERR_CORRUPT_HEADER;
  if (h.total_bytes > src_len) return NZ_ERR_TRUNCATED;
  if (h.element_count > dst_cap / s.elem_bytes) return NZ_ERR_DST_TOO_SMALL;
  return NZ_OK;
}

__host__ __device__ inline uint64_t payload_offset_of(uint32_t table_bytes, uint32_t chunk_count) {
  return NZ_HEADER_BYTES + uint64_t(table_bytes) + uint64_t(kChunkEntryBytes) * chunk_count;
}

struct ChunkEntry {
  uint64_t offset;
  uint32_t size;
  uint32_t kind;
  uint64_t checksum;
};

__device__ inline ChunkEntry load_chunk_entry(const uint8_t* base, uint32_t table_bytes, uint32_t c) {
  // Entries are 8-byte aligned: 64 + table_bytes (multiple of 8) + 24 * c.
  const uint64_t* e = reinterpret_cast<const uint64_t*>(base + NZ_HEADER_BYTES + table_bytes + uint64_t(kChunkEntryBytes) * c);
  uint64_t mid = e[1];
  return {e[0], uint32_t(mid), uint32_t(mid >> 32), e[2]};
}

// Sizes of the sections of a chunk payload (§3).
struct ChunkSections {
  uint32_t n;            // elements
  uint32_t blocks;       // nb
  uint32_t scale_bytes;  // pad4(nb), 0 without blocks
  uint32_t raw_bytes;    // pad4(ceil(n R / 8))
  uint32_t exp_bytes;    // pad4(ceil(n E / 8)) (packed kind)
};

__host__ __device__ inline ChunkSections sections_of(uint32_t n, uint32_t block_log2, uint32_t raw_bits, uint32_t exp_bits) {
  ChunkSections s;
  s.n = n;
  s.blocks = block_log2 ? (n + (1u << block_log2) - 1) >> block_log2 : 0;
  s.scale_bytes = uint32_t(pad4(s.blocks));
  s.raw_bytes = uint32_t(packed_bytes(n, raw_bits));
  s.exp_bytes = uint32_t(packed_bytes(n, exp_bits));
  return s;
}

}  // namespace nz::kernels
