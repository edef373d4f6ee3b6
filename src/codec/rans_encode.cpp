#include <cstring>

#include "codec/rans.h"

namespace nz::codec {

bool rans_encode(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                 uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count) {
  const uint32_t p = table.prob_bits;
  // Per symbol: the renormalisation bound f << (32 - P) (64-bit: f may be 2^P).
  uint64_t bound[256];
  // x / f as a multiply-high: with m = floor(2^64 / f) + 1 the quotient is
  // exact for every x < 2^32 and f < 2^16 (the error stays below 1/f).
  // f = 1 would need m = 2^64; it is the identity, chosen by a select.
  uint64_t magic[256];
  for (uint32_t s = 0; s < 256; ++s) {
    bound[s] = uint64_t{table.freq[s]} << (32 - p);
    magic[s] = table.freq[s] > 1 ? UINT64_MAX / table.freq[s] + 1 : 0;
  }
  uint32_t x[kLanes];
  for (uint32_t l = 0; l < kLanes; ++l) x[l] = kRansLow;
  uint64_t out = word_cap;  // next word goes to word_buf[out - 1]
  // Exactly the reverse of the decode order: element t is step t/32, lane t%32.
  for (uint64_t t = n; t-- > 0;) {
    const uint32_t s = symbols[t];
    const uint32_t lane = static_cast<uint32_t>(t % kLanes);
    uint32_t v = x[lane];
    if (v >= bound[s]) {
      if (out == 0) return false;
      word_buf[--out] = static_cast<uint16_t>(v & 0xFFFF);
      v >>= 16;
    }
    const uint32_t f = table.freq[s];
    const uint32_t q = f == 1 ? v : static_cast<uint32_t>((static_cast<unsigned __int128>(v) * magic[s]) >> 64);
    x[lane] = (q << p) + (v - q * f) + table.cum[s];
  }
  std::memcpy(states, x, sizeof(x));
  *word_count = word_cap - out;
  return true;
}

}  // namespace nz::codec
