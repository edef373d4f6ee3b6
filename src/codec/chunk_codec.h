// chunk_codec.h: encoding and decoding one chunk (docs/FORMAT.md section 3).
// The whole-buffer encoder/decoder, the simulator's host kernels and the
// runtime all go through these, after parse_buffer has validated the header
// and tables.
#pragma once

#include <cstdint>
#include <vector>

#include "codec/format.h"
#include "codec/freq_table.h"
#include "codec/rans.h"

namespace nz::codec {

// Decodes chunk `chunk` of `buf` into `dst` (room for the chunk's
// n * dtype-size bytes), verifying its padding, stream, final states and
// checksum. `table` must be built from buf.table when buf.has_table.
// Never allocates; never reads outside [buf.base, buf.base + total_bytes).
nz_status decode_chunk(const ParsedBuffer& buf, const DecodeTable& table, uint32_t chunk, uint8_t* dst,
                       CpuLevel level);

// Decodes chunks `chunk` and `chunk + 1` (into dst0 and dst1) with the same
// checks and results as two decode_chunk calls; where both use the fused
// AVX-512 bf16 decoder their streams are decoded interleaved, which is
// faster. `status` receives each chunk's result.
void decode_chunk_pair(const ParsedBuffer& buf, const DecodeTable& table, uint32_t chunk, uint8_t* dst0,
                       uint8_t* dst1, CpuLevel level, nz_status status[2]);

// What the encoder knows about one chunk.
struct ChunkSource {
  const uint8_t* elements = nullptr;  // n elements already rounded to K bits (the source when lossless)
  const uint8_t* scales = nullptr;    // one code per block, when block_log2 > 0
  uint64_t n = 0;
  uint64_t checksum = 0;  // nzhash of the chunk's decoded bytes
};

struct ChunkEncodeParams {
  DtypeLayout layout{};
  uint32_t kept_bits = 0;
  uint32_t block_log2 = 0;
  const FreqTable* table = nullptr;  // null: pack every chunk
  CpuLevel level = CpuLevel::kScalar;  // the vector paths allowed
};

// Reusable buffers of the chunk encoder (one per thread: they keep their
// capacity from chunk to chunk).
struct ChunkEncodeScratch {
  std::vector<uint8_t> symbols;
  std::vector<uint8_t> raw;
  std::vector<uint16_t> words;
};

// The largest payload of a chunk of n elements: its packed size.
uint64_t chunk_payload_capacity(const DtypeLayout& layout, uint64_t n, uint32_t kept_bits, uint32_t block_log2);

// Builds the payload (rANS when it is smaller than packed) at `out`, which
// has chunk_payload_capacity bytes, and its entry (offset left 0). Writes
// nothing past entry.size. May throw std::bad_alloc (callers translate it).
void encode_chunk(const ChunkEncodeParams& params, const ChunkSource& src, ChunkEncodeScratch& scratch,
                  uint8_t* out, ChunkEntry& entry);

// Adds the exponent symbols of n elements to `counts` (vectorised up to `level`).
void count_symbols(const uint8_t* elements, uint64_t n, const DtypeLayout& layout, uint64_t counts[256],
                   CpuLevel level);
void count_symbols_avx2(const uint8_t* elements, uint64_t n, nz_dtype dtype, uint64_t counts[256]);

}  // namespace nz::codec
