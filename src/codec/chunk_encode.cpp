#include <cstring>

#include "codec/bitpack.h"
#include "codec/chunk_codec.h"
#include "codec/element_io.h"
#include "codec/split.h"
#include "codec/symbol_histogram.h"

namespace nz::codec {

namespace {

// The element size and field position are compile-time constants here.
template <uint32_t kBytes, uint32_t kMantissaBits, uint32_t kExponentMask>
void count_symbols_fixed(const uint8_t* elements, uint64_t n, uint64_t counts[256]) {
  SymbolHistogram h;
  auto sym = [&](uint64_t i) { return (load_element(elements, i, kBytes) >> kMantissaBits) & kExponentMask; };
  uint64_t i = 0;
  while (i < n) {
    const uint64_t end = n - i > SymbolHistogram::kFlushElements ? i + SymbolHistogram::kFlushElements : n;
    for (; i + 4 <= end; i += 4) h.add4(sym(i), sym(i + 1), sym(i + 2), sym(i + 3));
    for (; i < end; ++i) h.add(sym(i));
    h.flush(counts);
  }
}

}  // namespace

void count_symbols(const uint8_t* elements, uint64_t n, const DtypeLayout& layout, uint64_t counts[256],
                   CpuLevel level) {
  const nz_dtype dtype = layout.bytes == 4 ? NZ_FP32 : layout.exponent_bits == 8 ? NZ_BF16 : NZ_FP16;
  if (level_allows(level, CpuLevel::kAvx2)) return count_symbols_avx2(elements, n, dtype, counts);
  if (dtype == NZ_BF16) return count_symbols_fixed<2, 7, 0xFF>(elements, n, counts);
  if (dtype == NZ_FP16) return count_symbols_fixed<2, 10, 0x1F>(elements, n, counts);
  count_symbols_fixed<4, 23, 0xFF>(elements, n, counts);
}

namespace {

// Splits every element into its symbol and its raw bits (packed into `raw`,
// zeroed, with kSplitSlack bytes of room after the section).
void split_chunk(const ChunkEncodeParams& params, const ChunkSource& src, uint8_t* symbols, uint8_t* raw) {
  const DtypeLayout& l = params.layout;
  const bool bf16 = l.bytes == 2 && l.exponent_bits == 8;
  const bool lossless = params.kept_bits == l.mantissa_bits;
  const nz_dtype dtype = bf16 ? NZ_BF16 : l.bytes == 4 ? NZ_FP32 : NZ_FP16;
  if (bf16 || lossless) {
    if (params.level == CpuLevel::kAvx512 && cpu_has_avx512_vbmi()) {
      if (bf16) {
        split_bf16_avx512(src.elements, src.n, params.kept_bits, symbols, raw);
      } else {
        split_wide_avx512(dtype, src.elements, src.n, symbols, raw);
      }
      return;
    }
    if (level_allows(params.level, CpuLevel::kAvx2)) {
      split_avx2(dtype, params.kept_bits, src.elements, src.n, symbols, raw);
      return;
    }
  }
  split_elements(l, params.kept_bits, src.elements, 0, src.n, symbols, raw);
}

}  // namespace

uint64_t chunk_payload_capacity(const DtypeLayout& layout, uint64_t n, uint32_t kept_bits, uint32_t block_log2) {
  return make_chunk_layout(layout, n, kept_bits, block_log2).packed_size();
}

void encode_chunk(const ChunkEncodeParams& params, const ChunkSource& src, ChunkEncodeScratch& scratch,
                  uint8_t* out, ChunkEntry& entry) {
  const DtypeLayout& l = params.layout;
  const ChunkLayout cl = make_chunk_layout(l, src.n, params.kept_bits, params.block_log2);
  entry = ChunkEntry{};
  entry.checksum = src.checksum;

  // The split writes every byte of the section up to its last value, and
  // the vector splits zeros after it; only the rest of the padding needs zeroing.
  scratch.symbols.resize(src.n);
  scratch.raw.resize(cl.raw_bytes + kSplitSlack);
  const uint64_t raw_used = (src.n * (1 + params.kept_bits) + 7) / 8;
  std::memset(scratch.raw.data() + raw_used, 0, scratch.raw.size() - raw_used);
  split_chunk(params, src, scratch.symbols.data(), scratch.raw.data());

  // rANS pays only if its stream is strictly smaller than the packed exponents.
  if (params.table != nullptr && cl.packed_size() > cl.rans_fixed_size()) {
    const uint64_t word_cap = (cl.packed_size() - cl.rans_fixed_size() - 1) / 2;
    scratch.words.resize(word_cap);
    uint32_t states[kLanes];
    uint64_t words = 0;
    if (rans_encode(params.level, scratch.symbols.data(), src.n, *params.table, states, scratch.words.data(),
                    word_cap, &words)) {
      uint8_t* p = out;
      std::memcpy(p, states, kStateBytes);
      p += kStateBytes;
      std::memset(p, 0, cl.scale_bytes);
      if (cl.block_count > 0) std::memcpy(p, src.scales, cl.block_count);
      p += cl.scale_bytes;
      std::memcpy(p, scratch.raw.data(), cl.raw_bytes);
      p += cl.raw_bytes;
      // Words are u16 little-endian; this host is little-endian (x86-64, aarch64).
      std::memcpy(p, scratch.words.data() + (word_cap - words), 2 * words);
      entry.kind = static_cast<uint32_t>(ChunkKind::kRans);
      entry.size = static_cast<uint32_t>(cl.rans_fixed_size() + 2 * words);
      return;
    }
  }

  uint8_t* p = out;
  std::memset(p, 0, cl.scale_bytes + cl.symbol_bytes);
  if (cl.block_count > 0) std::memcpy(p, src.scales, cl.block_count);
  p += cl.scale_bytes;
  BitWriter sym(p);
  for (uint64_t i = 0; i < src.n; ++i) sym.put(scratch.symbols[i], l.exponent_bits);
  sym.finish();
  p += cl.symbol_bytes;
  std::memcpy(p, scratch.raw.data(), cl.raw_bytes);
  entry.kind = static_cast<uint32_t>(ChunkKind::kPacked);
  entry.size = static_cast<uint32_t>(cl.packed_size());
}

}  // namespace nz::codec
