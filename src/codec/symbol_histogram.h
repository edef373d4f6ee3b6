// symbol_histogram.h: counting exponent symbols for the frequency table.
#pragma once

#include <cstdint>

namespace nz::codec {

// Four u32 histograms, so that repeated symbols (weights have few distinct
// exponents) do not serialise on one counter. Flush into u64 counts at
// least every kFlushElements additions, before a counter can overflow.
struct SymbolHistogram {
  static constexpr uint64_t kFlushElements = uint64_t{1} << 30;
  uint32_t h[4][256] = {};

  void add4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    ++h[0][a];
    ++h[1][b];
    ++h[2][c];
    ++h[3][d];
  }
  void add(uint32_t s) { ++h[0][s]; }

  void flush(uint64_t counts[256]) {
    for (int s = 0; s < 256; ++s) {
      counts[s] += uint64_t{h[0][s]} + h[1][s] + h[2][s] + h[3][s];
      h[0][s] = h[1][s] = h[2][s] = h[3][s] = 0;
    }
  }
};

}  // namespace nz::codec
