// Chooses the rANS symbol decoder of a level (no global -march flags).
#include "codec/rans.h"

namespace nz::codec {

bool rans_decode(CpuLevel level, RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count) {
  switch (level) {
    case CpuLevel::kAvx512: return rans_decode_avx512(dec, table, out, count);
    case CpuLevel::kAvx2: return rans_decode_avx2(dec, table, out, count);
    case CpuLevel::kScalar: break;
  }
  return rans_decode_scalar(dec, table, out, count);
}

}  // namespace nz::codec
