// The portable reference decoder: docs/FORMAT.md 4.1 line by line.
#include <cstring>

#include "codec/rans.h"

namespace nz::codec {

bool rans_decode_scalar(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count) {
  const uint32_t p = table.prob_bits;
  const uint32_t mask = (1u << p) - 1;
  uint64_t pos = dec.pos;
  for (uint64_t t = 0; t < count; ++t) {
    const uint32_t lane = static_cast<uint32_t>(t % kLanes);
    uint32_t x = dec.x[lane];
    const uint32_t slot = x & mask;
    const uint32_t s = table.symbol[slot];
    x = table.freq[s] * (x >> p) + slot - table.cum[s];
    out[t] = static_cast<uint8_t>(s);
    if (x < kRansLow) {
      if (pos >= dec.word_count) return false;
      uint16_t w;
      std::memcpy(&w, dec.words + 2 * pos, 2);
      ++pos;
      x = (x << 16) | w;
    }
    dec.x[lane] = x;
  }
  dec.pos = pos;
  return true;
}

}  // namespace nz::codec
