// AVX2 symbol counting for the encoder's frequency table: the exponent
// fields of 32 elements are cut out and packed to bytes with vector
// instructions (as the AVX2 split does), which leaves only the increments
// (SymbolHistogram) to scalar code. Same counts as count_symbols'
// element-by-element loop.
#include "codec/chunk_codec.h"
#include "codec/element_io.h"
#include "codec/symbol_histogram.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include "codec/simd_avx2.h"

namespace nz::codec {

namespace {

// The symbols of elements [i, i + 32) into `out`.
template <nz_dtype kDtype>
NZ_TARGET_AVX2 inline void symbols32(const uint8_t* elements, uint64_t i, uint8_t* out) {
  if constexpr (kDtype == NZ_FP32) {
    const __m256i low8 = _mm256_set1_epi32(0xFF);
    __m256i s[4];
    for (int q = 0; q < 4; ++q) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(elements + 4 * (i + 8 * q)));
      s[q] = _mm256_and_si256(_mm256_srli_epi32(x, 23), low8);
    }
    // The packs work within 128-bit halves: 4-byte groups of lanes 0, 8, 16, 24, 4, 12, 20, 28.
    const __m256i packed = _mm256_packus_epi16(_mm256_packus_epi32(s[0], s[1]), _mm256_packus_epi32(s[2], s[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                        _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  } else {
    const int shift = kDtype == NZ_BF16 ? 7 : 10;
    const __m256i mask = _mm256_set1_epi16(kDtype == NZ_BF16 ? 0xFF : 0x1F);
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(elements + 2 * i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(elements + 2 * i + 32));
    const __m256i packed = _mm256_packus_epi16(_mm256_and_si256(_mm256_srli_epi16(a, shift), mask),
                                               _mm256_and_si256(_mm256_srli_epi16(b, shift), mask));
    // packus works within 128-bit halves: the 8-byte groups come out as 0, 2, 1, 3.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute4x64_epi64(packed, 0xD8));
  }
}

template <nz_dtype kDtype>
NZ_TARGET_AVX2 void count(const uint8_t* elements, uint64_t n, uint64_t counts[256]) {
  constexpr uint32_t kBytes = kDtype == NZ_FP32 ? 4 : 2;
  constexpr uint32_t kShift = kDtype == NZ_BF16 ? 7 : kDtype == NZ_FP16 ? 10 : 23;
  constexpr uint32_t kMask = kDtype == NZ_FP16 ? 0x1F : 0xFF;
  SymbolHistogram h;
  alignas(32) uint8_t sym[256];
  uint64_t i = 0;
  while (i < n) {
    const uint64_t end = n - i > SymbolHistogram::kFlushElements ? i + SymbolHistogram::kFlushElements : n;
    for (; i + 256 <= end; i += 256) {
      for (uint64_t j = 0; j < 256; j += 32) symbols32<kDtype>(elements, i + j, sym + j);
      for (uint32_t j = 0; j < 256; j += 4) h.add4(sym[j], sym[j + 1], sym[j + 2], sym[j + 3]);
    }
    for (; i < end; ++i) h.add((load_element(elements, i, kBytes) >> kShift) & kMask);
    h.flush(counts);
  }
}

}  // namespace

NZ_TARGET_AVX2 void count_symbols_avx2(const uint8_t* elements, uint64_t n, nz_dtype dtype, uint64_t counts[256]) {
  if (dtype == NZ_BF16) {
    count<NZ_BF16>(elements, n, counts);
  } else if (dtype == NZ_FP16) {
    count<NZ_FP16>(elements, n, counts);
  } else {
    count<NZ_FP32>(elements, n, counts);
  }
}

}  // namespace nz::codec

#else

namespace nz::codec {
void count_symbols_avx2(const uint8_t* elements, uint64_t n, nz_dtype dtype, uint64_t counts[256]) {
  count_symbols(elements, n, dtype_layout(dtype), counts, CpuLevel::kScalar);
}
}  // namespace nz::codec

#endif
