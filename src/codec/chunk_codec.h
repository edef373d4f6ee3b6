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

// Reusable per-thread buffers of the chunk encoder.
struct ChunkEncodeScratch {
  std::vector<uint8_t> symbols;
  std::vector<uint16_t> words;
};

// Builds the payload (rANS when it is smaller than packed) and its entry
// (offset left 0). May throw std::bad_alloc (callers translate it).
void encode_chunk(const ChunkEncodeParams& params, const ChunkSource& src, ChunkEncodeScratch& scratch,
                  std::vector<uint8_t>& payload, ChunkEntry& entry);

// Counts the exponent symbols of n elements into `counts`.
void count_symbols(const uint8_t* elements, uint64_t n, const DtypeLayout& layout, uint64_t counts[256]);

}  // namespace nz::codec
