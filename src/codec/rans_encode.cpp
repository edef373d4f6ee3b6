// rANS encoder (docs/FORMAT.md 4.2): the scalar reference and the dispatch
// to the vector encoders.
#include <cstring>

#include "codec/rans.h"
#include "codec/rans_encode_scalar.h"

namespace nz::codec {

bool rans_encode_scalar(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                        uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count) {
  const RansEncodeSymbols params(table);
  uint32_t x[kLanes];
  for (uint32_t l = 0; l < kLanes; ++l) x[l] = kRansLow;
  uint64_t out = word_cap;  // next word goes to word_buf[out - 1]
  if (!rans_encode_range(symbols, 0, n, params, x, word_buf, out)) return false;
  std::memcpy(states, x, sizeof(x));
  *word_count = word_cap - out;
  return true;
}

bool rans_encode(CpuLevel level, const uint8_t* symbols, uint64_t n, const FreqTable& table,
                 uint32_t states[kLanes], uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count) {
  if (level == CpuLevel::kAvx512 && cpu_has_avx512_vbmi()) {
    return rans_encode_avx512(symbols, n, table, states, word_buf, word_cap, word_count);
  }
  if (level_allows(level, CpuLevel::kAvx2)) {
    return rans_encode_avx2(symbols, n, table, states, word_buf, word_cap, word_count);
  }
  return rans_encode_scalar(symbols, n, table, states, word_buf, word_cap, word_count);
}

}  // namespace nz::codec
