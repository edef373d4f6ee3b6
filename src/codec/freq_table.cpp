#include "codec/freq_table.h"

#include <cmath>

namespace nz::codec {

FreqTable normalize_frequencies(const std::array<uint64_t, 256>& counts, uint32_t alphabet,
                                uint32_t prob_bits) {
  FreqTable t;
  t.prob_bits = prob_bits;
  t.alphabet = alphabet;
  const uint64_t target = uint64_t{1} << prob_bits;
  uint64_t total = 0;
  for (uint32_t s = 0; s < alphabet; ++s) total += counts[s];

  int64_t sum = 0;
  for (uint32_t s = 0; s < alphabet; ++s) {
    if (counts[s] == 0) continue;
    double scaled = static_cast<double>(counts[s]) * static_cast<double>(target) / static_cast<double>(total);
    uint64_t f = static_cast<uint64_t>(scaled + 0.5);
    if (f < 1) f = 1;
    if (f > target) f = target;
    t.freq[s] = static_cast<uint32_t>(f);
    sum += static_cast<int64_t>(f);
  }
  // Fix the rounding one step at a time, always on the symbol where the step
  // costs the fewest bits (counts * log2 change). The difference is at most
  // about the number of present symbols, so this stays cheap.
  while (sum != static_cast<int64_t>(target)) {
    int best = -1;
    double best_cost = 0;
    for (uint32_t s = 0; s < alphabet; ++s) {
      if (counts[s] == 0) continue;
      double f = t.freq[s];
      double c = static_cast<double>(counts[s]);
      double cost;
      if (sum > static_cast<int64_t>(target)) {
        if (t.freq[s] <= 1) continue;
        cost = c * std::log2(f / (f - 1));  // bits lost by decrementing
      } else {
        cost = -c * std::log2((f + 1) / f);  // bits gained by incrementing (negative = good)
      }
      if (best < 0 || cost < best_cost) {
        best = static_cast<int>(s);
        best_cost = cost;
      }
    }
    if (sum > static_cast<int64_t>(target)) {
      --t.freq[best];
      --sum;
    } else {
      ++t.freq[best];
      ++sum;
    }
  }
  t.compute_cum();
  return t;
}

double coded_bits(const std::array<uint64_t, 256>& counts, const FreqTable& table) {
  double bits = 0;
  for (uint32_t s = 0; s < table.alphabet; ++s) {
    if (counts[s] == 0) continue;
    if (table.freq[s] == 0) return INFINITY;
    bits += static_cast<double>(counts[s]) *
            (table.prob_bits - std::log2(static_cast<double>(table.freq[s])));
  }
  return bits;
}

void build_decode_table(const FreqTable& table, DecodeTable& out) {
  out.prob_bits = table.prob_bits;
  out.has_packed = table.prob_bits <= DecodeTable::kPackedMaxProbBits;
  out.has_avx2 = table.prob_bits <= DecodeTable::kAvx2MaxProbBits;
  out.freq = table.freq;
  out.cum = table.cum;
  for (uint32_t s = 0; s < table.alphabet; ++s) {
    for (uint32_t k = 0; k < table.freq[s]; ++k) {
      uint32_t slot = table.cum[s] + k;
      out.symbol[slot] = static_cast<uint8_t>(s);
      if (out.has_packed) out.packed[slot] = k | ((table.freq[s] - 1) << 12) | (s << 24);
      if (out.has_avx2) out.avx2[slot] = k | (s << 12) | (table.freq[s] << 20);
    }
  }
}

}  // namespace nz::codec
