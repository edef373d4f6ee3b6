// freq_table.h: turning symbol counts into frequencies that sum to 2^P
// (docs/FORMAT.md 4.3), and the slot -> symbol tables the decoders use.
#pragma once

#include <array>
#include <cstdint>

#include "codec/format.h"

namespace nz::codec {

// Scales `counts` (alphabet entries) to frequencies summing to 2^prob_bits,
// every present symbol >= 1, choosing the rounding that costs the fewest
// coded bits. Requires at least one non-zero count and present <= 2^prob_bits.
FreqTable normalize_frequencies(const std::array<uint64_t, 256>& counts, uint32_t alphabet,
                                uint32_t prob_bits);

// Coded size in bits of the symbols counted in `counts` with `table`
// (the ideal rANS cost, used to decide whether coding can pay).
double coded_bits(const std::array<uint64_t, 256>& counts, const FreqTable& table);

// Slot table: for each slot in [0, 2^P) its symbol; with P <= 12 also a
// packed u32 per slot for the fast decoders (bits 0-11 slot - cum, 12-23
// freq - 1, 24-31 symbol: the bias needs no shift, the symbol is a whole
// byte for byte permutes). With P <= 11 also a u32 per slot for the AVX2
// decoders, where every instruction of the step counts (Zen 3 issues
// about 11 cycles per 8-lane gather, and the rest of the step competes for
// what remains): bits 0-11 slot - cum, 12-19 symbol, 20-31 the frequency
// itself (<= 2^11), so one shift extracts it. Fixed size, so decoding
// never allocates.
struct DecodeTable {
  static constexpr uint32_t kPackedMaxProbBits = 12;
  static constexpr uint32_t kAvx2MaxProbBits = 11;
  uint32_t prob_bits = 0;
  bool has_packed = false;
  bool has_avx2 = false;
  std::array<uint32_t, 256> freq{};
  std::array<uint32_t, 256> cum{};
  std::array<uint8_t, 1u << kMaxProbBits> symbol{};
  alignas(64) std::array<uint32_t, 1u << kPackedMaxProbBits> packed{};
  alignas(64) std::array<uint32_t, 1u << kAvx2MaxProbBits> avx2{};
};

void build_decode_table(const FreqTable& table, DecodeTable& out);

}  // namespace nz::codec
