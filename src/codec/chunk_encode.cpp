#include <cstring>

#include "codec/bitpack.h"
#include "codec/chunk_codec.h"
#include "codec/element_io.h"
#include "codec/split.h"

namespace nz::codec {

void count_symbols(const uint8_t* elements, uint64_t n, const DtypeLayout& layout, uint64_t counts[256]) {
  // Four histograms so repeated symbols do not serialise on one counter.
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

void encode_chunk(const ChunkEncodeParams& params, const ChunkSource& src, ChunkEncodeScratch& scratch,
                  std::vector<uint8_t>& payload, ChunkEntry& entry) {
  const DtypeLayout& l = params.layout;
  const ChunkLayout cl = make_chunk_layout(l, src.n, params.kept_bits, params.block_log2);
  const FieldSplit split(l, params.kept_bits);
  const uint32_t raw_bits = 1 + params.kept_bits;

  scratch.symbols.resize(src.n);
  payload.assign(cl.packed_size(), 0);  // big enough for either kind's fixed parts
  uint8_t* scales_at = payload.data();
  uint8_t* symbols_at = scales_at + cl.scale_bytes;
  uint8_t* raw_at = symbols_at + cl.symbol_bytes;
  {
    BitWriter raw(raw_at);
    BitWriter sym(symbols_at);
    for (uint64_t i = 0; i < src.n; ++i) {
      const uint32_t x = load_element(src.elements, i, l.bytes);
      const uint32_t s = split.symbol(x);
      scratch.symbols[i] = static_cast<uint8_t>(s);
      sym.put(s, l.exponent_bits);
      raw.put(split.raw(x), raw_bits);
    }
    raw.finish();
    sym.finish();
  }
  if (cl.block_count > 0) std::memcpy(scales_at, src.scales, cl.block_count);

  entry = ChunkEntry{};
  entry.checksum = src.checksum;
  entry.kind = static_cast<uint32_t>(ChunkKind::kPacked);
  entry.size = static_cast<uint32_t>(cl.packed_size());
  if (params.table == nullptr || cl.packed_size() <= cl.rans_fixed_size()) return;

  // rANS pays only if its stream is strictly smaller than the packed exponents.
  const uint64_t word_cap = (cl.packed_size() - cl.rans_fixed_size() - 1) / 2;
  scratch.words.resize(word_cap);
  uint32_t states[kLanes];
  uint64_t words = 0;
  if (!rans_encode(scratch.symbols.data(), src.n, *params.table, states, scratch.words.data(), word_cap,
                   &words)) {
    return;
  }
  const uint64_t size = cl.rans_fixed_size() + 2 * words;
  std::vector<uint8_t> packed_payload;
  packed_payload.swap(payload);
  payload.assign(size, 0);
  uint8_t* p = payload.data();
  std::memcpy(p, states, kStateBytes);
  p += kStateBytes;
  std::memcpy(p, packed_payload.data(), cl.scale_bytes);
  p += cl.scale_bytes;
  std::memcpy(p, packed_payload.data() + cl.scale_bytes + cl.symbol_bytes, cl.raw_bytes);
  p += cl.raw_bytes;
  std::memcpy(p, scratch.words.data() + (word_cap - words), 2 * words);
  entry.kind = static_cast<uint32_t>(ChunkKind::kRans);
  entry.size = static_cast<uint32_t>(size);
}

}  // namespace nz::codec
