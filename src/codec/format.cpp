#include "codec/format.h"

#include <cstring>

#include "codec/hash.h"

namespace nz::codec {

namespace {

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

constexpr uint64_t kHeaderChecksumOffset = 48;

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

uint32_t log2_exact(uint64_t v) {
  uint32_t r = 0;
  while ((uint64_t{1} << r) < v) ++r;
  return r;
}

// Parses and checks the frequency table at `src` (exactly `bytes` long).
nz_status parse_freq_table(const uint8_t* src, uint64_t bytes, uint32_t alphabet,
                           uint32_t prob_bits, FreqTable& table) {
  table = FreqTable{};
  table.prob_bits = prob_bits;
  table.alphabet = alphabet;
  uint64_t bitmap_bytes = alphabet / 8;
  if (bytes < bitmap_bytes) return NZ_ERR_CORRUPT_HEADER;
  uint32_t present = 0;
  for (uint32_t s = 0; s < alphabet; ++s) present += (src[s / 8] >> (s % 8)) & 1u;
  uint64_t used = bitmap_bytes + 2ull * present;
  if (round_up(used, 8) != bytes || present == 0) return NZ_ERR_CORRUPT_HEADER;
  uint64_t pos = bitmap_bytes;
  uint64_t total = 0;
  for (uint32_t s = 0; s < alphabet; ++s) {
    if (((src[s / 8] >> (s % 8)) & 1u) == 0) continue;
    uint16_t f = load<uint16_t>(src + pos);
    pos += 2;
    if (f == 0) return NZ_ERR_CORRUPT_HEADER;
    table.freq[s] = f;
    total += f;
  }
  if (total != (uint64_t{1} << prob_bits)) return NZ_ERR_CORRUPT_HEADER;
  for (uint64_t i = used; i < bytes; ++i) {
    if (src[i] != 0) return NZ_ERR_CORRUPT_HEADER;
  }
  table.compute_cum();
  return NZ_OK;
}

nz_status validate_header_fields(const Header& h, size_t src_len, DtypeLayout& layout) {
  if (h.magic != kMagic) return NZ_ERR_BAD_MAGIC;
  if (h.version != NZ_FORMAT_VERSION) return NZ_ERR_BAD_VERSION;
  layout = dtype_layout(h.dtype);
  if (!layout.valid) return NZ_ERR_CORRUPT_HEADER;
  if (h.mode != NZ_LOSSLESS && h.mode != NZ_LOSSY) return NZ_ERR_CORRUPT_HEADER;
  if (!is_power_of_two(h.chunk_elems) || h.chunk_elems < (1u << kMinChunkLog2) ||
      h.chunk_elems > (1u << kMaxChunkLog2)) {
    return NZ_ERR_CORRUPT_HEADER;
  }
  if (h.mode == NZ_LOSSLESS) {
    if (h.kept_bits != layout.mantissa_bits || h.block_log2 != 0) return NZ_ERR_CORRUPT_HEADER;
  } else if (h.kept_bits >= layout.mantissa_bits) {
    return NZ_ERR_CORRUPT_HEADER;
  }
  if (h.block_log2 > log2_exact(h.chunk_elems)) return NZ_ERR_CORRUPT_HEADER;
  if (h.prob_bits < kMinProbBits || h.prob_bits > kMaxProbBits) return NZ_ERR_CORRUPT_HEADER;
  if (h.lanes != kLanes) return NZ_ERR_CORRUPT_HEADER;
  // element_count is bounded by the chunk count (u32) times the chunk size.
  uint64_t expected_chunks = (h.element_count + h.chunk_elems - 1) / h.chunk_elems;
  if (h.element_count > (uint64_t{1} << 54) || expected_chunks != h.chunk_count) {
    return NZ_ERR_CORRUPT_HEADER;
  }
  if (h.table_bytes % 8 != 0 || h.reserved != 0) return NZ_ERR_CORRUPT_HEADER;
  uint64_t payload_offset = h.payload_offset();
  if (h.total_bytes < payload_offset || h.total_bytes - payload_offset != h.payload_bytes) {
    return NZ_ERR_CORRUPT_HEADER;
  }
  if (payload_offset > src_len || h.total_bytes > src_len) return NZ_ERR_TRUNCATED;
  return NZ_OK;
}

}  // namespace

void FreqTable::compute_cum() {
  uint32_t c = 0;
  for (uint32_t s = 0; s < 256; ++s) {
    cum[s] = c;
    c += freq[s];
  }
}

uint32_t FreqTable::present_count() const {
  uint32_t n = 0;
  for (uint32_t s = 0; s < alphabet; ++s) n += freq[s] != 0;
  return n;
}

uint64_t FreqTable::serialized_bytes() const { return round_up(alphabet / 8 + 2ull * present_count(), 8); }

ChunkLayout make_chunk_layout(const DtypeLayout& layout, uint64_t elements, uint32_t kept_bits,
                              uint32_t block_log2) {
  ChunkLayout c;
  c.elements = elements;
  if (block_log2 > 0) {
    c.block_count = (elements + (uint64_t{1} << block_log2) - 1) >> block_log2;
    c.scale_bytes = round_up(c.block_count, 4);
  }
  c.raw_bytes = packed_section_bytes(elements, 1 + kept_bits);
  c.symbol_bytes = packed_section_bytes(elements, layout.exponent_bits);
  return c;
}

uint64_t ParsedBuffer::chunk_elements(uint32_t chunk) const {
  uint64_t first = uint64_t{chunk} * header.chunk_elems;
  uint64_t rest = header.element_count - first;
  return rest < header.chunk_elems ? rest : header.chunk_elems;
}

ChunkEntry ParsedBuffer::chunk_entry(uint32_t chunk) const {
  const uint8_t* p = base + NZ_HEADER_BYTES + header.table_bytes + uint64_t{kChunkEntryBytes} * chunk;
  ChunkEntry e;
  e.offset = load<uint64_t>(p);
  e.size = load<uint32_t>(p + 8);
  e.kind = load<uint32_t>(p + 12);
  e.checksum = load<uint64_t>(p + 16);
  return e;
}

ChunkLayout ParsedBuffer::chunk_layout(uint32_t chunk) const {
  return make_chunk_layout(layout, chunk_elements(chunk), header.kept_bits, header.block_log2);
}

uint64_t ParsedBuffer::chunk_padded_end(uint32_t chunk) const {
  ChunkEntry e = chunk_entry(chunk);
  return round_up(e.offset + e.size, kPayloadAlign);
}

void write_header(const Header& h, uint8_t* dst) {
  std::memset(dst, 0, NZ_HEADER_BYTES);
  store(dst + 0, h.magic);
  store(dst + 4, h.version);
  store(dst + 6, h.dtype);
  store(dst + 7, h.mode);
  store(dst + 8, h.element_count);
  store(dst + 16, h.chunk_elems);
  store(dst + 20, h.kept_bits);
  store(dst + 21, h.block_log2);
  store(dst + 22, h.prob_bits);
  store(dst + 23, h.lanes);
  store(dst + 24, h.chunk_count);
  store(dst + 28, h.table_bytes);
  store(dst + 32, h.payload_bytes);
  store(dst + 40, h.total_bytes);
  store(dst + 48, h.header_checksum);
  store(dst + 56, h.reserved);
}

Header read_header(const uint8_t* src) {
  Header h;
  h.magic = load<uint32_t>(src + 0);
  h.version = load<uint16_t>(src + 4);
  h.dtype = src[6];
  h.mode = src[7];
  h.element_count = load<uint64_t>(src + 8);
  h.chunk_elems = load<uint32_t>(src + 16);
  h.kept_bits = src[20];
  h.block_log2 = src[21];
  h.prob_bits = src[22];
  h.lanes = src[23];
  h.chunk_count = load<uint32_t>(src + 24);
  h.table_bytes = load<uint32_t>(src + 28);
  h.payload_bytes = load<uint64_t>(src + 32);
  h.total_bytes = load<uint64_t>(src + 40);
  h.header_checksum = load<uint64_t>(src + 48);
  h.reserved = load<uint64_t>(src + 56);
  return h;
}

void write_freq_table(const FreqTable& table, uint8_t* dst) {
  uint64_t bytes = table.serialized_bytes();
  std::memset(dst, 0, bytes);
  uint64_t pos = table.alphabet / 8;
  for (uint32_t s = 0; s < table.alphabet; ++s) {
    if (table.freq[s] == 0) continue;
    dst[s / 8] |= static_cast<uint8_t>(1u << (s % 8));
    store(dst + pos, static_cast<uint16_t>(table.freq[s]));
    pos += 2;
  }
}

void write_chunk_entry(const ChunkEntry& e, uint8_t* dst) {
  store(dst + 0, e.offset);
  store(dst + 8, e.size);
  store(dst + 12, e.kind);
  store(dst + 16, e.checksum);
}

uint64_t header_checksum_of(const uint8_t* src, uint64_t payload_offset) {
  // nzhash of [0, payload_offset) with the checksum field read as zero: the
  // field is word-aligned (words 12 and 13), so subtract nothing, just skip it.
  uint64_t sum = hash_seed(payload_offset);
  sum += hash_add_bytes(src, kHeaderChecksumOffset, 0);
  sum += mix64(uint64_t{12} << 32) + mix64(uint64_t{13} << 32);
  sum += hash_add_bytes(src + kHeaderChecksumOffset + 8, payload_offset - kHeaderChecksumOffset - 8,
                        (kHeaderChecksumOffset + 8) / 4);
  return sum;
}

nz_status parse_buffer(const void* src, size_t src_len, ParsedBuffer& out) {
  if (src == nullptr) return NZ_ERR_INVALID_ARGUMENT;
  if (src_len < NZ_HEADER_BYTES) {
    // Say "not ours" rather than "truncated" when even the magic is wrong.
    if (src_len >= 4 && load<uint32_t>(static_cast<const uint8_t*>(src)) != kMagic) {
      return NZ_ERR_BAD_MAGIC;
    }
    return NZ_ERR_TRUNCATED;
  }
  out = ParsedBuffer{};
  out.base = static_cast<const uint8_t*>(src);
  out.header = read_header(out.base);
  const Header& h = out.header;
  if (nz_status st = validate_header_fields(h, src_len, out.layout); st != NZ_OK) return st;
  out.payload_offset = h.payload_offset();
  if (header_checksum_of(out.base, out.payload_offset) != h.header_checksum) {
    return NZ_ERR_CORRUPT_HEADER;
  }

  out.has_table = h.table_bytes != 0;
  if (out.has_table) {
    nz_status st = parse_freq_table(out.base + NZ_HEADER_BYTES, h.table_bytes,
                                    1u << out.layout.exponent_bits, h.prob_bits, out.table);
    if (st != NZ_OK) return st;
  }

  // Chunk table: offsets follow each other exactly, sizes and kinds agree
  // with the layout, and the payloads fill payload_bytes.
  uint64_t expected_offset = 0;
  for (uint32_t c = 0; c < h.chunk_count; ++c) {
    ChunkEntry e = out.chunk_entry(c);
    ChunkLayout cl = out.chunk_layout(c);
    if (e.offset != expected_offset) return NZ_ERR_CORRUPT_HEADER;
    if (e.kind == static_cast<uint32_t>(ChunkKind::kPacked)) {
      if (e.size != cl.packed_size()) return NZ_ERR_CORRUPT_HEADER;
      ++out.packed_chunks;
    } else if (e.kind == static_cast<uint32_t>(ChunkKind::kRans)) {
      if (!out.has_table || e.size < cl.rans_fixed_size() || (e.size - cl.rans_fixed_size()) % 2 != 0) {
        return NZ_ERR_CORRUPT_HEADER;
      }
      ++out.coded_chunks;
    } else {
      return NZ_ERR_CORRUPT_HEADER;
    }
    expected_offset = round_up(e.offset + e.size, kPayloadAlign);
    if (expected_offset > h.payload_bytes) return NZ_ERR_CORRUPT_HEADER;
  }
  if (expected_offset != h.payload_bytes) return NZ_ERR_CORRUPT_HEADER;
  // The table exists exactly when some chunk uses it.
  if (out.has_table != (out.coded_chunks > 0)) return NZ_ERR_CORRUPT_HEADER;
  return NZ_OK;
}

}  // namespace nz::codec
