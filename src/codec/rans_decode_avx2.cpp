// AVX2 rANS symbol decoder: the shared step (rans_step_avx2.h), then the
// symbols of the step's 32 lanes packed to bytes. Used where no fused
// decoder applies; the partial last step and the last few stream words go
// to the scalar decoder.
#include "codec/rans.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "codec/rans_step_avx2.h"

namespace nz::codec {

NZ_TARGET_AVX2 bool rans_decode_avx2(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count) {
  if (!table.has_avx2) return rans_decode_scalar(dec, table, out, count);
  const avx2::StepConsts k(table);
  const __m256i low_byte = _mm256_set1_epi32(0xFF);
  auto symbols = [&](__m256i e) NZ_TARGET_AVX2 { return _mm256_and_si256(_mm256_srli_epi32(e, 12), low_byte); };
  avx2::StreamTail tail;
  avx2::Stream s(dec, tail);
  // The two packs work within 128-bit halves: the 4-byte groups come out as
  // lanes 0-3, 8-11, 16-19, 24-27, 4-7, 12-15, 20-23, 28-31.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const uint64_t full_steps = count / kLanes;
  uint64_t step = 0;
  for (; step < full_steps && s.can_step(); ++step) {
    __m256i e[4];
    s.step(k, e);
    const __m256i a = _mm256_packus_epi32(symbols(e[0]), symbols(e[1]));
    const __m256i b = _mm256_packus_epi32(symbols(e[2]), symbols(e[3]));
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, b), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + step * kLanes), bytes);
  }
  s.save(dec);
  if (s.overrun()) return false;
  const uint64_t done = step * kLanes;
  return rans_decode_scalar(dec, table, out + done, count - done);
}

}  // namespace nz::codec

#else

namespace nz::codec {
bool rans_decode_avx2(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count) {
  return rans_decode_scalar(dec, table, out, count);
}
}  // namespace nz::codec

#endif
