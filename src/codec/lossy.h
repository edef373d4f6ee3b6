// lossy.h: rounding to K mantissa bits and block normalisation
// (docs/FORMAT.md section 6). Plain binary32 IEEE operations and integer bit
// manipulation only, so that the GPU kernels can reproduce every bit.
#pragma once

#include <cstdint>

#include "codec/cpu_level.h"
#include "codec/dtype.h"
#include "neuzip/neuzip.h"

namespace nz::codec {

// round_k: the element of (E, M) nearest to the binary32 `v_bits`, keeping K
// mantissa bits, ties to even, carry into the exponent. Finite values that
// would overflow become the largest finite K-bit value when
// `clamp_overflow`, else infinity (IEEE conversion). Infinities are kept,
// NaN becomes the quiet NaN (caller rejects NaN when K = 0).
uint32_t round_k(uint32_t v_bits, const DtypeLayout& layout, uint32_t kept_bits, bool clamp_overflow);

// Exact conversion of an element bit pattern to binary32 bits.
uint32_t element_to_f32_bits(uint32_t bits, const DtypeLayout& layout);

// binary32 -> dtype, round to nearest even (identity for fp32).
uint32_t f32_bits_to_element(uint32_t f32_bits, const DtypeLayout& layout);

bool element_is_nan(uint32_t bits, const DtypeLayout& layout);
bool element_is_finite(uint32_t bits, const DtypeLayout& layout);

// Scale code q of a block whose largest finite magnitude is `absmax_bits`
// (binary32, >= 0): q = floor((f - 1) * 256) with absmax = 2^e * f.
uint32_t scale_code(uint32_t absmax_bits);
inline float scale_value(uint32_t code) { return 1.0f + static_cast<float>(code) / 256.0f; }

// Quantises `n` elements of `src` into K-bit elements at `dst` (same dtype),
// writing one scale code per block of 2^block_log2 to `scales` when
// block_log2 > 0. NZ_ERR_UNSUPPORTED for a NaN with K = 0. Vectorised up
// to `level`; every level gives the same bytes.
nz_status quantize_chunk(const uint8_t* src, uint64_t n, const DtypeLayout& layout, uint32_t kept_bits,
                         uint32_t block_log2, uint8_t* dst, uint8_t* scales, CpuLevel level);

// The decoder's half of block normalisation, in place: y = to_dtype(d * S).
// Non-finite elements pass through unchanged. Returns false when a scale code
// is not one the encoder can produce (structural check for corruption).
bool dequantize_chunk(uint8_t* data, uint64_t n, const DtypeLayout& layout, uint32_t block_log2,
                      const uint8_t* scales, CpuLevel level);

// The element-by-element implementations of the two functions above (the
// reference the vector paths are tested against; the scalar level).
nz_status quantize_chunk_reference(const uint8_t* src, uint64_t n, const DtypeLayout& layout, uint32_t kept_bits,
                                   uint32_t block_log2, uint8_t* dst, uint8_t* scales);
bool dequantize_chunk_reference(uint8_t* data, uint64_t n, const DtypeLayout& layout, uint32_t block_log2,
                                const uint8_t* scales);

// bf16 with AVX-512 (F, BW, VL): the same results, 16 elements at a time.
nz_status quantize_bf16_avx512(const uint8_t* src, uint64_t n, uint32_t kept_bits, uint32_t block_log2,
                               uint8_t* dst, uint8_t* scales);
bool dequantize_bf16_avx512(uint8_t* data, uint64_t n, uint32_t block_log2, const uint8_t* scales);
// Every dtype with AVX2 (and F16C for fp16): the same results, 8 elements at a time.
nz_status quantize_avx2(const uint8_t* src, uint64_t n, const DtypeLayout& layout, uint32_t kept_bits,
                        uint32_t block_log2, uint8_t* dst, uint8_t* scales);
bool dequantize_avx2(uint8_t* data, uint64_t n, const DtypeLayout& layout, uint32_t block_log2,
                     const uint8_t* scales);

}  // namespace nz::codec
