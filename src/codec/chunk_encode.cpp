#include <cstring>

#include "codec/bitpack.h"
#include "codec/chunk_codec.h"
#include "codec/element_io.h"
#include "codec/split.h"

namespace nz::codec {

namespace {

// Four histograms so repeated symbols do not serialise on one counter. The
// element size and field position are compile-time constants here.
template <uint32_t kBytes, uint32_t kMantissaBits, uint32_t kExponentMask>
void count_symbols_fixed(const uint8_t* elements, uint64_t n, uint64_t counts[256]) {
  uint32_t h[4][256] = {};
  auto sym = [&](uint64_t i) { return (load_element(elements, i, kBytes) >> kMantissaBits) & kExponentMask; };
  uint64_t i = 0;
  while (i < n) {
    const uint64_t end = n - i > (1u << 30) ? i + (1u << 30) : n;  // keep u32 counters from overflowing
    for (; i + 4 <= end; i += 4) {
      ++h[0][sym(i)];
      ++h[1][sym(i + 1)];
      ++h[2][sym(i + 2)];
      ++h[3][sym(i + 3)];
    }
    for (; i < end; ++i) ++h[0][sym(i)];
    for (int s = 0; s < 256; ++s) {
      counts[s] += uint64_t{h[0][s]} + h[1][s] + h[2][s] + h[3][s];
      h[0][s] = h[1][s] = h[2][s] = h[3][s] = 0;
    }
  }
}

}  // namespace

void count_symbols(const uint8_t* elements, uint64_t n, const DtypeLayout& layout, uint64_t counts[256]) {
  if (layout.bytes == 2 && layout.exponent_bits == 8) return count_symbols_fixed<2, 7, 0xFF>(elements, n, counts);
  if (layout.bytes == 2) return count_symbols_fixed<2, 10, 0x1F>(elements, n, counts);
  if (layout.bytes == 4) return count_symbols_fixed<4, 23, 0xFF>(elements, n, counts);
  uint32_t h[4][256] = {};
  const FieldSplit split(layout, layout.mantissa_bits);
  uint64_t i = 0;
  auto flush = [&] {
    for (int s = 0; s < 256; ++s) {
      counts[s] += uint64_t{h[0][s]} + h[1][s] + h[2][s] + h[3][s];
      h[0][s] = h[1][s] = h[2][s] = h[3][s] = 0;
    }
  };
  while (i < n) {
    uint64_t end = n - i > (1u << 30) ? i + (1u << 30) : n;  // keep u32 counters from overflowing
    for (; i + 4 <= end; i += 4) {
      ++h[0][split.symbol(load_element(elements, i, layout.bytes))];
      ++h[1][split.symbol(load_element(elements, i + 1, layout.bytes))];
      ++h[2][split.symbol(load_element(elements, i + 2, layout.bytes))];
      ++h[3][split.symbol(load_element(elements, i + 3, layout.bytes))];
    }
    for (; i < end; ++i) ++h[0][split.symbol(load_element(elements, i, layout.bytes))];
    flush();
  }
}

namespace {

// Splits every element into its symbol and its raw bits (packed into `raw`).
void split_chunk(const ChunkEncodeParams& params, const ChunkSource& src, uint8_t* symbols, uint8_t* raw) {
  const DtypeLayout& l = params.layout;
  const FieldSplit split(l, params.kept_bits);
  const bool bf16 = l.bytes == 2 && l.exponent_bits == 8;
  const bool vbmi = params.level == CpuLevel::kAvx512 && cpu_has_avx512_vbmi();
  if (bf16 && vbmi) {
    split_bf16_avx512(src.elements, src.n, params.kept_bits, symbols, raw);
    return;
  }
  const bool lossless = params.kept_bits == l.mantissa_bits;
  if (!bf16 && lossless && vbmi) {  // fp16 or fp32
    split_wide_avx512(l.bytes == 4 ? NZ_FP32 : NZ_FP16, src.elements, src.n, symbols, raw);
    return;
  }
  if (bf16 && params.kept_bits == 7) {
    // bf16 lossless: the raw value is one whole byte (sign, 7 mantissa bits).
    for (uint64_t i = 0; i < src.n; ++i) {
      uint16_t x;
      std::memcpy(&x, src.elements + 2 * i, 2);
      symbols[i] = static_cast<uint8_t>(x >> 7);
      raw[i] = static_cast<uint8_t>(((x >> 8) & 0x80) | (x & 0x7F));
    }
    return;
  }
  BitWriter writer(raw);
  const uint32_t raw_bits = 1 + params.kept_bits;
  for (uint64_t i = 0; i < src.n; ++i) {
    const uint32_t x = load_element(src.elements, i, l.bytes);
    symbols[i] = static_cast<uint8_t>(split.symbol(x));
    writer.put(split.raw(x), raw_bits);
  }
  writer.finish();
}

}  // namespace

void encode_chunk(const ChunkEncodeParams& params, const ChunkSource& src, ChunkEncodeScratch& scratch,
                  std::vector<uint8_t>& payload, ChunkEntry& entry) {
  const DtypeLayout& l = params.layout;
  const ChunkLayout cl = make_chunk_layout(l, src.n, params.kept_bits, params.block_log2);
  entry = ChunkEntry{};
  entry.checksum = src.checksum;

  // Room for the larger of the two layouts' fixed parts; sections are
  // placed once the kind is known.
  scratch.symbols.resize(src.n);
  std::vector<uint8_t> raw(cl.raw_bytes, 0);
  split_chunk(params, src, scratch.symbols.data(), raw.data());

  // rANS pays only if its stream is strictly smaller than the packed exponents.
  if (params.table != nullptr && cl.packed_size() > cl.rans_fixed_size()) {
    const uint64_t word_cap = (cl.packed_size() - cl.rans_fixed_size() - 1) / 2;
    scratch.words.resize(word_cap);
    uint32_t states[kLanes];
    uint64_t words = 0;
    if (rans_encode(params.level, scratch.symbols.data(), src.n, *params.table, states, scratch.words.data(), word_cap,
                    &words)) {
      payload.assign(cl.rans_fixed_size() + 2 * words, 0);
      uint8_t* p = payload.data();
      std::memcpy(p, states, kStateBytes);
      p += kStateBytes;
      if (cl.block_count > 0) std::memcpy(p, src.scales, cl.block_count);
      p += cl.scale_bytes;
      std::memcpy(p, raw.data(), cl.raw_bytes);
      p += cl.raw_bytes;
      // Words are u16 little-endian; this host is little-endian (x86-64, aarch64).
      std::memcpy(p, scratch.words.data() + (word_cap - words), 2 * words);
      entry.kind = static_cast<uint32_t>(ChunkKind::kRans);
      entry.size = static_cast<uint32_t>(payload.size());
      return;
    }
  }

  payload.assign(cl.packed_size(), 0);
  uint8_t* p = payload.data();
  if (cl.block_count > 0) std::memcpy(p, src.scales, cl.block_count);
  p += cl.scale_bytes;
  BitWriter sym(p);
  for (uint64_t i = 0; i < src.n; ++i) sym.put(scratch.symbols[i], l.exponent_bits);
  sym.finish();
  p += cl.symbol_bytes;
  std::memcpy(p, raw.data(), cl.raw_bytes);
  entry.kind = static_cast<uint32_t>(ChunkKind::kPacked);
  entry.size = static_cast<uint32_t>(payload.size());
}

}  // namespace nz::codec
