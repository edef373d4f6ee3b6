// AVX2 lossy mode (docs/FORMAT.md section 6) for bf16, fp16 and fp32, 8
// elements per vector (u32 lanes holding the element bits), bit-identical to
// the reference in lossy.cpp:
// * round_k of a binary32 v to K mantissa bits is an integer
//   round-to-nearest-even of |v| >> (23 - K), the carry running into the
//   exponent; the parity of the kept bit is the same in binary32 as in the
//   element (bf16 and fp32 share binary32's exponent bias; fp16's differs by
//   112, an even number). bf16 and fp32 then shift back; an overflow past the
//   largest finite value becomes that value, which is a plain unsigned min.
// * fp16 below 2^-14 is subnormal: there the step is 2^(-14-K) whatever the
//   exponent, and adding then subtracting 2^(9-K) in binary32 rounds |v| to
//   that step, ties to even (the sum's last significand bit is the parity of
//   the multiple). The multiple, times 2^24, is the fp16 bit pattern.
// * to_dtype(d * S) is the same rounding with K = M and no clamp (bf16: an
//   overflow rounds to the infinity pattern by itself); fp16 uses F16C's
//   round-to-nearest-even conversion, fp32 is the identity.
// * the scale division and multiplication are IEEE binary32 operations, the
//   same as the scalar ones (F16C's fp16 -> binary32 conversion is exact).
// AVX2 has no masked loads: a vector that would run past the end of a block
// goes through a zero-padded copy (a zero changes no block maximum, and
// quantises and scales to zero).
#include "codec/lossy.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cstring>

#include "codec/simd_avx2.h"

#define NZ_TARGET_LOSSY_AVX2 __attribute__((target("avx2,f16c")))

namespace nz::codec {

namespace {

// What differs between the dtypes, as u32-lane constants.
template <nz_dtype kDtype>
struct Lanes {
  static constexpr DtypeLayout l = dtype_layout(kDtype);
  static constexpr uint32_t kBits = 8 * l.bytes;
  static constexpr uint32_t kSign = 1u << (kBits - 1);
  static constexpr uint32_t kMagnitude = kSign - 1;
  static constexpr uint32_t kExponent = ((1u << l.exponent_bits) - 1) << l.mantissa_bits;
  static constexpr uint32_t kMantissa = (1u << l.mantissa_bits) - 1;
  static constexpr uint32_t kQuietNan = kExponent | (1u << (l.mantissa_bits - 1));
};

// Up to 8 elements from `p` as u32 lanes; lanes past `count` are zero.
template <nz_dtype kDtype>
NZ_TARGET_LOSSY_AVX2 inline __m256i load8(const uint8_t* p, uint64_t count) {
  alignas(32) uint8_t tmp[32] = {};
  if (count < 8) {
    std::memcpy(tmp, p, Lanes<kDtype>::l.bytes * count);
    p = tmp;
  }
  if constexpr (kDtype == NZ_FP32) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Stores the first `count` (<= 8) lanes as elements.
template <nz_dtype kDtype>
NZ_TARGET_LOSSY_AVX2 inline void store8(uint8_t* p, uint64_t count, __m256i v) {
  alignas(32) uint8_t tmp[32];
  uint8_t* out = count >= 8 ? p : tmp;
  if constexpr (kDtype == NZ_FP32) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), v);
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                     _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
  }
  if (count < 8) std::memcpy(p, tmp, Lanes<kDtype>::l.bytes * count);
}

// Element bits (u32 lanes) as binary32, exactly.
template <nz_dtype kDtype>
NZ_TARGET_LOSSY_AVX2 inline __m256 to_f32(__m256i x) {
  if constexpr (kDtype == NZ_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
  if constexpr (kDtype == NZ_FP32) return _mm256_castsi256_ps(x);
  const __m256i words = _mm256_packus_epi32(x, x);  // within halves: lanes 0-3, 0-3, 4-7, 4-7
  return _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(words, 0x08)));
}

// All ones in the lanes whose exponent is not all ones.
template <nz_dtype kDtype>
NZ_TARGET_LOSSY_AVX2 inline __m256i finite_lanes(__m256i x) {
  const __m256i exp = _mm256_set1_epi32(static_cast<int>(Lanes<kDtype>::kExponent));
  return _mm256_xor_si256(_mm256_cmpeq_epi32(_mm256_and_si256(x, exp), exp), _mm256_set1_epi32(-1));
}

// Round-to-nearest-even of the non-negative a >> shift.
NZ_TARGET_LOSSY_AVX2 inline __m256i round_shift(__m256i a, __m128i shift, __m256i half_minus_one) {
  const __m256i lsb = _mm256_and_si256(_mm256_srl_epi32(a, shift), _mm256_set1_epi32(1));
  return _mm256_srl_epi32(_mm256_add_epi32(_mm256_add_epi32(a, half_minus_one), lsb), shift);
}

NZ_TARGET_LOSSY_AVX2 inline bool all_zero(__m256i m) { return _mm256_testz_si256(m, m) != 0; }

// round_k of finite binary32 values to K bits of the dtype, overflow clamped,
// as element magnitudes (the caller adds the sign).
template <nz_dtype kDtype>
struct RoundK {
  __m128i shift;            // 23 - K
  __m256i half_minus_one;   // 2^(22 - K) - 1
  __m256i largest;          // the largest finite K-bit magnitude
  __m256 subnormal_bias;    // fp16: 2^(9 - K)
  __m256 two24;             // fp16: 2^24
  __m256i rebias;           // fp16: 112 << 10

  NZ_TARGET_LOSSY_AVX2 explicit RoundK(uint32_t k) {
    constexpr DtypeLayout l = Lanes<kDtype>::l;
    shift = _mm_cvtsi32_si128(static_cast<int>(23 - k));
    half_minus_one = _mm256_set1_epi32(static_cast<int>((1u << (22 - k)) - 1));
    const uint32_t max_exp = (1u << l.exponent_bits) - 2;
    largest = _mm256_set1_epi32(static_cast<int>((max_exp << l.mantissa_bits) | (((1u << k) - 1) << (l.mantissa_bits - k))));
    subnormal_bias = _mm256_set1_ps(static_cast<float>(1u << 9) / static_cast<float>(1u << k));
    two24 = _mm256_set1_ps(16777216.0f);
    rebias = _mm256_set1_epi32(112 << 10);
  }

  NZ_TARGET_LOSSY_AVX2 __m256i magnitude(__m256 v) const {
    const __m256i abs = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7FFFFFFF));
    // |v| rounded to K bits in binary32, as bits.
    const __m256i rounded = _mm256_sll_epi32(round_shift(abs, shift, half_minus_one), shift);
    if constexpr (kDtype == NZ_BF16) return _mm256_min_epu32(_mm256_srli_epi32(rounded, 16), largest);
    if constexpr (kDtype == NZ_FP32) return _mm256_min_epu32(rounded, largest);
    // fp16: rebias a normal result (an overflow shows as a huge pattern and is clamped) ...
    const __m256i normal = _mm256_min_epu32(_mm256_sub_epi32(_mm256_srli_epi32(rounded, 13), rebias), largest);
    // ... or round below 2^-14 to the subnormal step.
    const __m256 a = _mm256_castsi256_ps(abs);
    const __m256 stepped = _mm256_sub_ps(_mm256_add_ps(a, subnormal_bias), subnormal_bias);
    const __m256i subnormal = _mm256_cvttps_epi32(_mm256_mul_ps(stepped, two24));
    const __m256i below = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x38800000), abs);  // |v| < 2^-14
    return _mm256_blendv_epi8(normal, subnormal, below);
  }
};

// to_dtype of finite binary32 values, round to nearest even, no clamp (bits with sign).
template <nz_dtype kDtype>
NZ_TARGET_LOSSY_AVX2 inline __m256i from_f32(__m256 y) {
  const __m256i b = _mm256_castps_si256(y);
  if constexpr (kDtype == NZ_FP32) return b;
  if constexpr (kDtype == NZ_BF16) {
    return round_shift(b, _mm_cvtsi32_si128(16), _mm256_set1_epi32(0x7FFF));
  }
  return _mm256_cvtepu16_epi32(_mm256_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

template <nz_dtype kDtype>
NZ_TARGET_LOSSY_AVX2 nz_status quantize(const uint8_t* src, uint64_t n, uint32_t k, uint32_t block_log2, uint8_t* dst,
                                        uint8_t* scales) {
  using L = Lanes<kDtype>;
  const uint64_t block = block_log2 > 0 ? (uint64_t{1} << block_log2) : n;
  const uint32_t bytes = L::l.bytes;
  const RoundK<kDtype> round(k);
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(L::kSign));
  const __m256i magnitude = _mm256_set1_epi32(static_cast<int>(L::kMagnitude));
  const __m256i mantissa = _mm256_set1_epi32(static_cast<int>(L::kMantissa));
  const __m256i quiet_nan = _mm256_set1_epi32(static_cast<int>(L::kQuietNan));
  const __m256i zero = _mm256_setzero_si256();
  for (uint64_t start = 0, b = 0; start < n; start += block, ++b) {
    const uint64_t end = start + block < n ? start + block : n;
    uint32_t code = 0;
    if (block_log2 > 0) {
      // Element magnitudes order like their bit patterns.
      __m256i absmax = zero;
      for (uint64_t i = start; i < end; i += 8) {
        const __m256i x = load8<kDtype>(src + bytes * i, end - i);
        absmax = _mm256_max_epu32(absmax, _mm256_and_si256(finite_lanes<kDtype>(x), _mm256_and_si256(x, magnitude)));
      }
      alignas(32) uint32_t lanes[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), absmax);
      uint32_t m = 0;
      for (uint32_t v : lanes) m = v > m ? v : m;
      code = scale_code(element_to_f32_bits(m, L::l));
    }
    const __m256 s = _mm256_set1_ps(scale_value(code));
    __m256i any_nonzero = zero;
    for (uint64_t i = start; i < end; i += 8) {
      const __m256i x = load8<kDtype>(src + bytes * i, end - i);
      const __m256i finite = finite_lanes<kDtype>(x);
      // NaN: not finite, mantissa non-zero.
      const __m256i nan = _mm256_andnot_si256(_mm256_or_si256(finite, _mm256_cmpeq_epi32(_mm256_and_si256(x, mantissa), zero)),
                                              _mm256_set1_epi32(-1));
      if (k == 0 && !all_zero(nan)) return NZ_ERR_UNSUPPORTED;
      __m256 v = to_f32<kDtype>(x);
      if (code != 0) v = _mm256_blendv_ps(v, _mm256_div_ps(v, s), _mm256_castsi256_ps(finite));
      __m256i d = _mm256_or_si256(_mm256_and_si256(x, sign), round.magnitude(v));
      d = _mm256_blendv_epi8(x, d, finite);  // infinities kept
      d = _mm256_blendv_epi8(d, _mm256_or_si256(_mm256_and_si256(x, sign), quiet_nan), nan);
      any_nonzero = _mm256_or_si256(any_nonzero, _mm256_and_si256(finite, _mm256_and_si256(d, magnitude)));
      store8<kDtype>(dst + bytes * i, end - i, d);
    }
    // A block whose quantised elements are all zero or non-finite stores 0 (lossy.cpp).
    if (block_log2 > 0) scales[b] = static_cast<uint8_t>(all_zero(any_nonzero) ? 0 : code);
  }
  return NZ_OK;
}

template <nz_dtype kDtype>
NZ_TARGET_LOSSY_AVX2 bool dequantize(uint8_t* data, uint64_t n, uint32_t block_log2, const uint8_t* scales) {
  using L = Lanes<kDtype>;
  if (block_log2 == 0) return true;
  const uint64_t block = uint64_t{1} << block_log2;
  const uint32_t bytes = L::l.bytes;
  const __m256i magnitude = _mm256_set1_epi32(static_cast<int>(L::kMagnitude));
  const __m256i zero = _mm256_setzero_si256();
  for (uint64_t start = 0, b = 0; start < n; start += block, ++b) {
    const uint64_t end = start + block < n ? start + block : n;
    const uint32_t code = scales[b];
    // bf16 block maxima have 7 fraction bits, so their codes are even.
    if (kDtype == NZ_BF16 && (code & 1)) return false;
    if (code == 0) continue;
    const __m256 s = _mm256_set1_ps(scale_value(code));
    __m256i any_nonzero = zero;
    for (uint64_t i = start; i < end; i += 8) {
      const __m256i d = load8<kDtype>(data + bytes * i, end - i);
      const __m256i finite = finite_lanes<kDtype>(d);
      any_nonzero = _mm256_or_si256(any_nonzero, _mm256_and_si256(finite, _mm256_and_si256(d, magnitude)));
      const __m256i y = from_f32<kDtype>(_mm256_mul_ps(to_f32<kDtype>(d), s));
      store8<kDtype>(data + bytes * i, end - i, _mm256_blendv_epi8(d, y, finite));  // non-finite elements unchanged
    }
    if (all_zero(any_nonzero)) return false;
  }
  return true;
}

}  // namespace

nz_status quantize_avx2(const uint8_t* src, uint64_t n, const DtypeLayout& layout, uint32_t kept_bits,
                        uint32_t block_log2, uint8_t* dst, uint8_t* scales) {
  if (layout.bytes == 4) return quantize<NZ_FP32>(src, n, kept_bits, block_log2, dst, scales);
  if (layout.exponent_bits == 8) return quantize<NZ_BF16>(src, n, kept_bits, block_log2, dst, scales);
  return quantize<NZ_FP16>(src, n, kept_bits, block_log2, dst, scales);
}

bool dequantize_avx2(uint8_t* data, uint64_t n, const DtypeLayout& layout, uint32_t block_log2,
                     const uint8_t* scales) {
  if (layout.bytes == 4) return dequantize<NZ_FP32>(data, n, block_log2, scales);
  if (layout.exponent_bits == 8) return dequantize<NZ_BF16>(data, n, block_log2, scales);
  return dequantize<NZ_FP16>(data, n, block_log2, scales);
}

}  // namespace nz::codec

#else

namespace nz::codec {
nz_status quantize_avx2(const uint8_t* src, uint64_t n, const DtypeLayout& layout, uint32_t kept_bits,
                        uint32_t block_log2, uint8_t* dst, uint8_t* scales) {
  return quantize_chunk_reference(src, n, layout, kept_bits, block_log2, dst, scales);
}
bool dequantize_avx2(uint8_t* data, uint64_t n, const DtypeLayout& layout, uint32_t block_log2,
                     const uint8_t* scales) {
  return dequantize_chunk_reference(data, n, layout, block_log2, scales);
}
}  // namespace nz::codec

#endif
