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
  BitReader reader(raw, raw_section_bytes, first, raw_bits);
  for (uint64_t i = 0; i < count; ++i) store_element(dst, first + i, bytes, split.join(symbols[i], reader.get()));
}

}  // namespace

// One chunk between its checks and its end: where its sections are and how
// far the fused decoder got.
struct ChunkDecodeState {
  ChunkEntry entry;
  ChunkLayout layout;
  bool rans = false;
  const uint8_t* scales = nullptr;
  const uint8_t* symbols_packed = nullptr;  // packed kind only
  const uint8_t* raw = nullptr;
  const uint8_t* payload_end = nullptr;
  RansDecoder dec{};
  FusedJob fused;  // what the fused decoder did (nothing: all zero)
};

namespace {

// Structural checks before any decoding: padding and initial states.
nz_status begin_chunk(const ParsedBuffer& buf, uint32_t chunk, ChunkDecodeState& st) {
  const Header& h = buf.header;
  st.entry = buf.chunk_entry(chunk);
  st.layout = buf.chunk_layout(chunk);
  const ChunkEntry& e = st.entry;
  const ChunkLayout& cl = st.layout;
  const uint64_t n = cl.elements;
  const uint8_t* payload = buf.base + buf.payload_offset + e.offset;

  // parse_buffer checked that offsets chain and stay inside payload_bytes.
  const uint64_t padded_end = buf.chunk_padded_end(chunk);
  if (!bytes_are_zero(payload + e.size, padded_end - e.offset - e.size)) return NZ_ERR_CORRUPT_CHUNK;

  st.rans = e.kind == static_cast<uint32_t>(ChunkKind::kRans);
  st.payload_end = payload + e.size;
  st.scales = payload + (st.rans ? kStateBytes : 0);
  st.symbols_packed = st.scales + cl.scale_bytes;
  st.raw = st.rans ? st.scales + cl.scale_bytes : st.symbols_packed + cl.symbol_bytes;
  const uint32_t raw_bits = 1 + h.kept_bits;

  if (!bytes_are_zero(st.scales + cl.block_count, cl.scale_bytes - cl.block_count)) return NZ_ERR_CORRUPT_CHUNK;
  if (!packed_tail_is_zero(st.raw, cl.raw_bytes, n * raw_bits)) return NZ_ERR_CORRUPT_CHUNK;
  if (!st.rans && !packed_tail_is_zero(st.symbols_packed, cl.symbol_bytes, n * buf.layout.exponent_bits)) {
    return NZ_ERR_CORRUPT_CHUNK;
  }
  if (st.rans) {
    if (!buf.has_table) return NZ_ERR_CORRUPT_CHUNK;
    std::memcpy(st.dec.x, payload, kStateBytes);
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
      if (st.dec.x[lane] < kRansLow) return NZ_ERR_CORRUPT_CHUNK;
    }
    st.dec.words = st.raw + cl.raw_bytes;
    st.dec.word_count = (e.size - cl.rans_fixed_size()) / 2;
    st.dec.pos = 0;
  }
  return NZ_OK;
}

// rANS chunks go through a fused decoder first where one exists for the
// level (AVX2: every dtype and K; AVX-512: bf16 any K, fp16 and fp32
// lossless): it does the merge, and without block scaling the hash too. What it leaves (the last partial step,
// the last few stream words) goes through the generic path and is scaled and
// hashed separately. AVX-512 without VBMI uses the AVX2 ones.
enum class FusedKind { kNone, kBf16Avx512, kWideAvx512, kBf16Avx2, kWideAvx2 };

FusedKind fused_kind(const ParsedBuffer& buf, const ChunkDecodeState& st, CpuLevel level) {
  if (!st.rans || level == CpuLevel::kScalar) return FusedKind::kNone;
  const Header& h = buf.header;
  const bool bf16 = h.dtype == NZ_BF16;
  // The AVX-512 fp16/fp32 decoder is lossless only; the AVX2 one does any K.
  if (level == CpuLevel::kAvx512 && cpu_has_avx512_vbmi() && (bf16 || h.mode == NZ_LOSSLESS)) {
    return bf16 ? FusedKind::kBf16Avx512 : FusedKind::kWideAvx512;
  }
  return bf16 ? FusedKind::kBf16Avx2 : FusedKind::kWideAvx2;
}

FusedParams fused_params(const ParsedBuffer& buf) {
  FusedParams p;
  p.kept_bits = buf.header.kept_bits;
  p.block_log2 = buf.header.block_log2;
  return p;
}

void run_fused(FusedKind kind, const ParsedBuffer& buf, const DecodeTable& table, FusedJob& job) {
  const auto dtype = static_cast<nz_dtype>(buf.header.dtype);
  switch (kind) {
    case FusedKind::kBf16Avx512: return rans_decode_bf16_avx512(table, fused_params(buf), job);
    case FusedKind::kWideAvx512: return rans_decode_wide_avx512(table, dtype, job);
    case FusedKind::kBf16Avx2: return rans_decode_bf16_avx2(table, fused_params(buf), job);
    case FusedKind::kWideAvx2: return rans_decode_wide_avx2(table, dtype, fused_params(buf), job);
    case FusedKind::kNone: return;
  }
}

// The AVX-512 decoders interleave two chunks' streams; the others run one
// after the other.
void run_fused_pair(FusedKind kind, const ParsedBuffer& buf, const DecodeTable& table, FusedJob& a, FusedJob& b) {
  if (kind == FusedKind::kBf16Avx512) {
    rans_decode_bf16_avx512_pair(table, fused_params(buf), a, b);
  } else if (kind == FusedKind::kWideAvx512) {
    rans_decode_wide_avx512_pair(table, static_cast<nz_dtype>(buf.header.dtype), a, b);
  } else {
    run_fused(kind, buf, table, a);
    run_fused(kind, buf, table, b);
  }
}

void prepare_job(ChunkDecodeState& st, uint8_t* dst) {
  st.fused.dec = &st.dec;
  st.fused.raw = st.raw;
  st.fused.dst = dst;
  st.fused.scales = st.scales;
  st.fused.end = st.payload_end;
  st.fused.count = st.layout.elements;
}

// Everything after the fused part: the generic decode of the rest, the end
// checks, block scaling and the checksum.
nz_status finish_chunk(const ParsedBuffer& buf, const DecodeTable& table, ChunkDecodeState& st, uint8_t* dst,
                       CpuLevel level) {
  const Header& h = buf.header;
  const DtypeLayout& l = buf.layout;
  const ChunkLayout& cl = st.layout;
  const uint64_t n = cl.elements;
  const uint32_t raw_bits = 1 + h.kept_bits;
  const FieldSplit split(l, h.kept_bits);
  const bool bf16_lossless = h.dtype == NZ_BF16 && h.mode == NZ_LOSSLESS;
  if (st.fused.corrupt) return NZ_ERR_CORRUPT_CHUNK;
  alignas(64) uint8_t symbols[kSliceElements];
  for (uint64_t first = st.fused.done; first < n; first += kSliceElements) {
    const uint64_t count = n - first < kSliceElements ? n - first : kSliceElements;
    if (st.rans) {
      if (!rans_decode(level, st.dec, table, symbols, count)) return NZ_ERR_CORRUPT_CHUNK;
    } else {
      BitReader reader(st.symbols_packed, cl.symbol_bytes, first, l.exponent_bits);
      for (uint64_t i = 0; i < count; ++i) symbols[i] = static_cast<uint8_t>(reader.get());
    }
    if (bf16_lossless) {
      merge_bf16_lossless(symbols, st.raw + first, count, dst + 2 * first);
    } else {
      merge_generic(split, l.bytes, symbols, st.raw, cl.raw_bytes, first, count, raw_bits, dst);
    }
  }
  if (st.rans) {
    if (st.dec.pos != st.dec.word_count) return NZ_ERR_CORRUPT_CHUNK;
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
      if (st.dec.x[lane] != kRansLow) return NZ_ERR_CORRUPT_CHUNK;
    }
  }
  // [0, final_done) is final output, already hashed (a multiple of the
  // block size and of 32 elements, so the rest starts on a block and a
  // hash-word boundary).
  const uint64_t done = st.fused.final_done;
  const uint64_t first_block = h.block_log2 > 0 ? done >> h.block_log2 : 0;
  if (!dequantize_chunk(dst + done * l.bytes, n - done, l, h.block_log2, st.scales + first_block, level)) {
    return NZ_ERR_CORRUPT_CHUNK;
  }
  const uint64_t hash = hash_seed(n * l.bytes) + st.fused.hash_sum +
                        hash_add_bytes(dst + done * l.bytes, (n - done) * l.bytes, done * l.bytes / 4, level);
  if (hash != st.entry.checksum) return NZ_ERR_CHECKSUM;
  return NZ_OK;
}

}  // namespace

nz_status decode_chunk(const ParsedBuffer& buf, const DecodeTable& table, uint32_t chunk, uint8_t* dst,
                       CpuLevel level) {
  ChunkDecodeState st;
  if (nz_status s = begin_chunk(buf, chunk, st); s != NZ_OK) return s;
  if (const FusedKind kind = fused_kind(buf, st, level); kind != FusedKind::kNone) {
    prepare_job(st, dst);
    run_fused(kind, buf, table, st.fused);
  }
  return finish_chunk(buf, table, st, dst, level);
}

void decode_chunk_pair(const ParsedBuffer& buf, const DecodeTable& table, uint32_t chunk, uint8_t* dst0,
                       uint8_t* dst1, CpuLevel level, nz_status status[2]) {
  ChunkDecodeState st[2];
  uint8_t* dst[2] = {dst0, dst1};
  status[0] = begin_chunk(buf, chunk, st[0]);
  status[1] = begin_chunk(buf, chunk + 1, st[1]);
  const FusedKind kind[2] = {status[0] == NZ_OK ? fused_kind(buf, st[0], level) : FusedKind::kNone,
                             status[1] == NZ_OK ? fused_kind(buf, st[1], level) : FusedKind::kNone};
  if (kind[0] != FusedKind::kNone && kind[0] == kind[1]) {
    prepare_job(st[0], dst[0]);
    prepare_job(st[1], dst[1]);
    run_fused_pair(kind[0], buf, table, st[0].fused, st[1].fused);
  } else {
    for (int i = 0; i < 2; ++i) {
      if (kind[i] != FusedKind::kNone) {
        prepare_job(st[i], dst[i]);
        run_fused(kind[i], buf, table, st[i].fused);
      }
    }
  }
  for (int i = 0; i < 2; ++i) {
    if (status[i] == NZ_OK) status[i] = finish_chunk(buf, table, st[i], dst[i], level);
  }
}

}  // namespace nz::codec
