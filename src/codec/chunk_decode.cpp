#include <cstring>

#include "codec/bitpack.h"
#include "codec/chunk_codec.h"
#include "codec/element_io.h"
#include "codec/hash.h"
#include "codec/lossy.h"
#include "codec/split.h"

namespace nz::codec {

namespace {

// Symbols are produced and merged in slices that fit in L1.
constexpr uint64_t kSliceElements = 4096;

bool bytes_are_zero(const uint8_t* p, uint64_t len) {
  for (uint64_t i = 0; i < len; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// bf16 lossless: raw values are whole bytes (sign, 7 mantissa bits).
void merge_bf16_lossless(const uint8_t* symbols, const uint8_t* raw, uint64_t count, uint8_t* dst) {
  for (uint64_t i = 0; i < count; ++i) {
    const uint16_t r = raw[i];
    const uint16_t v = static_cast<uint16_t>(((r & 0x80) << 8) | (uint16_t{symbols[i]} << 7) | (r & 0x7F));
    std::memcpy(dst + 2 * i, &v, 2);
  }
}

void merge_generic(const FieldSplit& split, uint32_t bytes, const uint8_t* symbols, const uint8_t* raw,
                   uint64_t raw_section_bytes, uint64_t first, uint64_t count, uint32_t raw_bits,
                   uint8_t* dst) {
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t r = read_packed(raw, raw_section_bytes, first + i, raw_bits);
    store_element(dst, first + i, bytes, split.join(symbols[i], r));
  }
}

}  // namespace

nz_status decode_chunk(const ParsedBuffer& buf, const DecodeTable& table, uint32_t chunk, uint8_t* dst,
                       RansImpl impl) {
  const Header& h = buf.header;
  const DtypeLayout& l = buf.layout;
  const ChunkEntry e = buf.chunk_entry(chunk);
  const ChunkLayout cl = buf.chunk_layout(chunk);
  const uint64_t n = cl.elements;
  const uint8_t* payload = buf.base + buf.payload_offset + e.offset;

  // parse_buffer checked that offsets chain and stay inside payload_bytes.
  const uint64_t padded_end = buf.chunk_padded_end(chunk);
  if (!bytes_are_zero(payload + e.size, padded_end - e.offset - e.size)) return NZ_ERR_CORRUPT_CHUNK;

  const bool rans = e.kind == static_cast<uint32_t>(ChunkKind::kRans);
  const uint8_t* scales = payload + (rans ? kStateBytes : 0);
  const uint8_t* symbols_packed = scales + cl.scale_bytes;  // packed kind only
  const uint8_t* raw = rans ? scales + cl.scale_bytes : symbols_packed + cl.symbol_bytes;
  const uint32_t raw_bits = 1 + h.kept_bits;

  if (!bytes_are_zero(scales + cl.block_count, cl.scale_bytes - cl.block_count)) return NZ_ERR_CORRUPT_CHUNK;
  if (!packed_tail_is_zero(raw, cl.raw_bytes, n * raw_bits)) return NZ_ERR_CORRUPT_CHUNK;
  if (!rans && !packed_tail_is_zero(symbols_packed, cl.symbol_bytes, n * l.exponent_bits)) {
    return NZ_ERR_CORRUPT_CHUNK;
  }

  RansDecoder dec{};
  if (rans) {
    if (!buf.has_table) return NZ_ERR_CORRUPT_CHUNK;
    std::memcpy(dec.x, payload, kStateBytes);
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
      if (dec.x[lane] < kRansLow) return NZ_ERR_CORRUPT_CHUNK;
    }
    dec.words = raw + cl.raw_bytes;
    dec.word_count = (e.size - cl.rans_fixed_size()) / 2;
    dec.pos = 0;
  }

  const FieldSplit split(l, h.kept_bits);
  const bool bf16_lossless = h.dtype == NZ_BF16 && h.mode == NZ_LOSSLESS;
  // bf16 with AVX-512: the fused decoder does the merge too, and the hash
  // when the merged elements are the output (no block scaling); whatever it
  // leaves (the last partial step, the last few stream words) goes through
  // the generic path below and is hashed separately.
  uint64_t fused = 0;
  uint64_t hash_terms = 0;
  const bool fused_hash = h.block_log2 == 0;
  if (rans && h.dtype == NZ_BF16 && impl == RansImpl::kAvx512 && rans_bf16_fused_supported()) {
    fused = rans_decode_bf16_avx512(dec, table, raw, h.kept_bits, dst, n, 0, fused_hash ? &hash_terms : nullptr);
  }
  alignas(64) uint8_t symbols[kSliceElements];
  for (uint64_t first = fused; first < n; first += kSliceElements) {
    const uint64_t count = n - first < kSliceElements ? n - first : kSliceElements;
    if (rans) {
      if (!rans_decode(impl, dec, table, symbols, count)) return NZ_ERR_CORRUPT_CHUNK;
    } else {
      for (uint64_t i = 0; i < count; ++i) {
        symbols[i] = static_cast<uint8_t>(read_packed(symbols_packed, cl.symbol_bytes, first + i, l.exponent_bits));
      }
    }
    if (bf16_lossless) {
      merge_bf16_lossless(symbols, raw + first, count, dst + 2 * first);
    } else {
      merge_generic(split, l.bytes, symbols, raw, cl.raw_bytes, first, count, raw_bits, dst);
    }
  }
  if (rans) {
    if (dec.pos != dec.word_count) return NZ_ERR_CORRUPT_CHUNK;
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
      if (dec.x[lane] != kRansLow) return NZ_ERR_CORRUPT_CHUNK;
    }
  }
  if (!dequantize_chunk(dst, n, l, h.block_log2, scales)) return NZ_ERR_CORRUPT_CHUNK;
  uint64_t hash;
  if (fused > 0 && fused_hash) {
    // fused is a multiple of 32 elements, so the rest starts on a word boundary.
    hash = hash_seed(n * l.bytes) + hash_terms + hash_add_bytes(dst + 2 * fused, 2 * (n - fused), fused / 2);
  } else {
    hash = nzhash(dst, n * l.bytes);
  }
  if (hash != e.checksum) return NZ_ERR_CHECKSUM;
  return NZ_OK;
}

}  // namespace nz::codec
