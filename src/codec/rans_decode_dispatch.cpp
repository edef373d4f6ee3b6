// Chooses a rANS decoder for this CPU at run time (no global -march flags).
#include "codec/rans.h"

namespace nz::codec {

bool rans_impl_supported(RansImpl impl) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  switch (impl) {
    case RansImpl::kScalar: return true;
    case RansImpl::kAvx2: return __builtin_cpu_supports("avx2");
    case RansImpl::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  }
  return false;
#else
  return impl == RansImpl::kScalar;
#endif
}

RansImpl best_rans_impl() {
  static const RansImpl best = [] {
    if (rans_impl_supported(RansImpl::kAvx512)) return RansImpl::kAvx512;
    if (rans_impl_supported(RansImpl::kAvx2)) return RansImpl::kAvx2;
    return RansImpl::kScalar;
  }();
  return best;
}

bool rans_decode(RansImpl impl, RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count) {
  switch (impl) {
    case RansImpl::kAvx512: return rans_decode_avx512(dec, table, out, count);
    case RansImpl::kAvx2: return rans_decode_avx2(dec, table, out, count);
    case RansImpl::kScalar: break;
  }
  return rans_decode_scalar(dec, table, out, count);
}

}  // namespace nz::codec
