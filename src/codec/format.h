// format.h: the header, frequency table and chunk table of a neuzip buffer
// (docs/FORMAT.md section 2): their in-memory form, serialisation, and the
// validating parser every decoder (CPU, simulator kernels, runtime) shares.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "codec/dtype.h"
#include "neuzip/neuzip.h"

namespace nz::codec {

inline constexpr uint32_t kMagic = 0x50495A4Eu;
inline constexpr uint32_t kLanes = NZ_LANES;
inline constexpr uint32_t kChunkEntryBytes = 24;
inline constexpr uint32_t kPayloadAlign = 16;
inline constexpr uint32_t kMinChunkLog2 = 10;
inline constexpr uint32_t kMaxChunkLog2 = 22;
inline constexpr uint32_t kMinProbBits = 8;
inline constexpr uint32_t kMaxProbBits = 15;
inline constexpr uint32_t kStateBytes = 4 * kLanes;
inline constexpr uint32_t kRansLow = 1u << 16;

enum class ChunkKind : uint32_t { kRans = 0, kPacked = 1 };

struct Header {
  uint32_t magic = kMagic;
  uint16_t version = NZ_FORMAT_VERSION;
  uint8_t dtype = 0;
  uint8_t mode = 0;
  uint64_t element_count = 0;
  uint32_t chunk_elems = 0;
  uint8_t kept_bits = 0;
  uint8_t block_log2 = 0;
  uint8_t prob_bits = 0;
  uint8_t lanes = kLanes;
  uint32_t chunk_count = 0;
  uint32_t table_bytes = 0;
  uint64_t payload_bytes = 0;
  uint64_t total_bytes = 0;
  uint64_t header_checksum = 0;
  uint64_t reserved = 0;

  uint64_t payload_offset() const {
    return NZ_HEADER_BYTES + uint64_t{table_bytes} + uint64_t{kChunkEntryBytes} * chunk_count;
  }
};

// Normalised symbol frequencies: freq[s] sums to 2^prob_bits over present symbols.
struct FreqTable {
  uint32_t prob_bits = 0;
  uint32_t alphabet = 0;  // 2^E
  std::array<uint32_t, 256> freq{};
  std::array<uint32_t, 256> cum{};

  void compute_cum();
  uint32_t present_count() const;
  uint64_t serialized_bytes() const;  // bitmap + u16 per present symbol, padded to 8
};

struct ChunkEntry {
  uint64_t offset = 0;
  uint32_t size = 0;
  uint32_t kind = 0;
  uint64_t checksum = 0;
};

// Sizes of the sections of one chunk payload (docs/FORMAT.md section 3).
struct ChunkLayout {
  uint64_t elements = 0;      // n
  uint64_t scale_bytes = 0;   // pad4(nb), 0 without blocks
  uint64_t block_count = 0;   // nb
  uint64_t raw_bytes = 0;     // pad4(ceil(n * R / 8))
  uint64_t symbol_bytes = 0;  // packed: pad4(ceil(n * E / 8))
  uint64_t packed_size() const { return scale_bytes + symbol_bytes + raw_bytes; }
  uint64_t rans_fixed_size() const { return kStateBytes + scale_bytes + raw_bytes; }
};

// A validated buffer: header, frequency table and chunk table are consistent
// with each other and with the buffer length. Points into the caller's bytes.
struct ParsedBuffer {
  Header header;
  DtypeLayout layout{};
  FreqTable table;
  bool has_table = false;
  const uint8_t* base = nullptr;
  uint64_t payload_offset = 0;
  uint32_t coded_chunks = 0;
  uint32_t packed_chunks = 0;

  uint64_t chunk_elements(uint32_t chunk) const;
  ChunkEntry chunk_entry(uint32_t chunk) const;
  ChunkLayout chunk_layout(uint32_t chunk) const;
  // Offset (from payload_offset) where the next payload begins: the end of
  // this chunk's padding.
  uint64_t chunk_padded_end(uint32_t chunk) const;
  uint64_t original_bytes() const { return header.element_count * layout.bytes; }
};

ChunkLayout make_chunk_layout(const DtypeLayout& layout, uint64_t elements, uint32_t kept_bits,
                              uint32_t block_log2);

void write_header(const Header& header, uint8_t* dst);
Header read_header(const uint8_t* src);
// Writes the table (table.serialized_bytes() bytes, padding zeroed).
void write_freq_table(const FreqTable& table, uint8_t* dst);
void write_chunk_entry(const ChunkEntry& entry, uint8_t* dst);

// nzhash of [0, payload_offset) with the header_checksum field read as zero.
uint64_t header_checksum_of(const uint8_t* src, uint64_t payload_offset);

// Full validation of everything before the payloads (docs/FORMAT.md 2.1-2.3).
nz_status parse_buffer(const void* src, size_t src_len, ParsedBuffer& out);

}  // namespace nz::codec
