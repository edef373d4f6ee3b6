// rans_encode_scalar.h: the per-symbol scalar encoding step, shared by the
// scalar encoder and the AVX-512 encoder's partial last step.
#pragma once

#include <cstdint>

#include "codec/format.h"

namespace nz::codec {

// Per-symbol constants of the encoder.
struct RansEncodeSymbols {
  uint32_t prob_bits;
  const uint32_t* freq;
  const uint32_t* cum;
  // Renormalisation bound f << (32 - P) (64-bit: f may be 2^P).
  uint64_t bound[256];
  // x / f as a multiply-high: with m = floor(2^64 / f) + 1 the quotient is
  // exact for every x < 2^32 and f < 2^16 (the error stays below 1/f).
  // f = 1 would need m = 2^64; it is the identity, chosen by a select.
  uint64_t magic[256];

  explicit RansEncodeSymbols(const FreqTable& table)
      : prob_bits(table.prob_bits), freq(table.freq.data()), cum(table.cum.data()) {
    for (uint32_t s = 0; s < 256; ++s) {
      bound[s] = uint64_t{table.freq[s]} << (32 - table.prob_bits);
      magic[s] = table.freq[s] > 1 ? UINT64_MAX / table.freq[s] + 1 : 0;
    }
  }
};

// Encodes elements [begin, end) in reverse order (end - 1 first), element t
// on lane t % 32. Words go to word_buf[--out]; false when out would drop below 0.
inline bool rans_encode_range(const uint8_t* symbols, uint64_t begin, uint64_t end, const RansEncodeSymbols& p,
                              uint32_t x[kLanes], uint16_t* word_buf, uint64_t& out) {
  for (uint64_t t = end; t-- > begin;) {
    const uint32_t s = symbols[t];
    const uint32_t lane = static_cast<uint32_t>(t % kLanes);
    uint32_t v = x[lane];
    if (v >= p.bound[s]) {
      if (out == 0) return false;
      word_buf[--out] = static_cast<uint16_t>(v & 0xFFFF);
      v >>= 16;
    }
    const uint32_t f = p.freq[s];
    const uint32_t q = f == 1 ? v : static_cast<uint32_t>((static_cast<unsigned __int128>(v) * p.magic[s]) >> 64);
    x[lane] = (q << p.prob_bits) + (v - q * f) + p.cum[s];
  }
  return true;
}

}  // namespace nz::codec
