// lossy.cuh: K-bit rounding and block normalisation (docs/FORMAT.md §6).
//
// Every float operation is binary32 round-to-nearest-even with explicit
// __fmul_rn/__fdiv_rn intrinsics, the file is compiled with -fmad=false and
// without fast-math (no flush to zero), so results equal the CPU codec's.
#pragma once

#include <stdint.h>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

#include "format.cuh"

namespace nz::kernels {

// Element bits (in the low elem_bytes*8 bits) -> binary32, exactly.
__device__ inline float element_to_f32(uint32_t bits, uint32_t dtype) {
  switch (dtype) {
    case NZ_BF16: return __uint_as_float(bits << 16);
    case NZ_FP16: {
      uint32_t s = (bits & 0x8000u) << 16, e = (bits >> 10) & 0x1Fu, m = bits & 0x3FFu;
      if (e == 0x1Fu) return __uint_as_float(s | 0x7F800000u | (m << 13));
      if (e != 0) return __uint_as_float(s | ((e + 112u) << 23) | (m << 13));
      // Subnormal: m * 2^-24, exact in binary32.
      float v = __fmul_rn(float(m), 5.9604644775390625e-8f);
      return __uint_as_float(__float_as_uint(v) | s);
    }
    default: return __uint_as_float(bits);
  }
}

// binary32 -> dtype bits, round to nearest even (the decoder's to_dtype).
__device__ inline uint32_t f32_to_element(float v, uint32_t dtype) {
  uint32_t u = __float_as_uint(v);
  switch (dtype) {
    case NZ_BF16:
      if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x40u;
      return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    case NZ_FP16: return __half_as_ushort(__float2half_rn(v));
    default: return u;
  }
}

// Scale code q of a block whose largest finite magnitude is `a` (>= 0).
__device__ inline uint32_t scale_code(float a) {
  uint32_t u = __float_as_uint(a);
  if (u == 0) return 0;
  uint32_t field = u & 0x7FFFFFu;
  if ((u >> 23) == 0) {  // subnormal: normalise so the leading one leaves the field
    uint32_t lead = 31u - __clz(field);
    field = (field << (23u - lead)) & 0x7FFFFFu;
  }
  return field >> 15;  // floor((f - 1) * 256): the top 8 fraction bits
}

__device__ inline float scale_value(uint32_t q) { return __fadd_rn(1.0f, __fdiv_rn(float(q), 256.0f)); }

// round_k of a binary32 value into dtype bits with K kept bits (§6.1).
// Returns false for a NaN with K = 0 (not representable).
__device__ inline bool round_k(float v, uint32_t dtype, uint32_t kept, uint32_t& out) {
  uint32_t u = __float_as_uint(v);
  uint32_t sign = u & 0x80000000u;
  uint32_t mag = u & 0x7FFFFFFFu;
  bool is_nan = mag > 0x7F800000u, is_inf = mag == 0x7F800000u;
  if (dtype == NZ_FP16) {
    uint32_t s16 = sign >> 16;
    if (is_nan) { out = s16 | 0x7C00u | 0x200u; return kept >= 1; }
    if (is_inf) { out = s16 | 0x7C00u; return true; }
    if (mag < 0x38800000u) {  // below 2^-14: multiples of 2^(-14-K)
      float scaled = __fmul_rn(__uint_as_float(mag), __uint_as_float((127u + 14u + kept) << 23));
      uint32_t c = uint32_t(__float2uint_rn(scaled));
      out = s16 | (c << (10u - kept));
      return true;
    }
    uint32_t drop = 23u - kept;
    uint32_t r = (mag + (1u << (drop - 1)) - 1u + ((mag >> drop) & 1u)) & ~((1u << drop) - 1u);
    if (r >= 0x47800000u) r = 0x47000000u | (0x7FFFFFu & ~((1u << drop) - 1u));  // no overflow to inf
    uint32_t e16 = ((r >> 23) & 0xFFu) - 112u;
    out = s16 | (e16 << 10) | ((r & 0x7FFFFFu) >> 13);
    return true;
  }
  // bf16 and fp32 share binary32's exponent range: round the binary32 field.
  uint32_t drop = 23u - kept;  // K counts from the top of the field for both
  uint32_t shift_out = dtype == NZ_BF16 ? 16u : 0u;
  if (is_nan) {
    out = (sign | 0x7F800000u | 0x400000u) >> shift_out;
    return kept >= 1;
  }
  if (is_inf) { out = u >> shift_out; return true; }
  uint32_t r = (mag + (1u << (drop - 1)) - 1u + ((mag >> drop) & 1u)) & ~((1u << drop) - 1u);
  if (r >= 0x7F800000u) r = 0x7F000000u | (0x7FFFFFu & ~((1u << drop) - 1u));
  out = (sign | r) >> shift_out;
  return true;
}

}  // namespace nz::kernels

namespace nz::kernels {

// A warp walks a chunk 32 elements per step; blocks of B = 2^block_log2
// elements are aligned to the chunk. block_any() ORs a per-element flag over
// each block and says, on exactly one lane per finished block, which block it
// was and whether any element had the flag. B <= 32: lanes of a block reduce
// with xor-shuffles; B > 32: a running warp vote until the block's last step.
struct BlockReport {
  bool report;
  bool any;
  uint32_t block;
};

__device__ inline BlockReport block_any(bool flag, uint32_t base, uint32_t n, uint32_t block_log2, uint32_t& running) {
  const uint32_t lane = threadIdx.x & 31u;
  const uint32_t B = 1u << block_log2;
  const uint32_t t = base + lane;
  if (B <= 32) {
    uint32_t v = flag ? 1u : 0u;
    for (uint32_t d = 1; d < B; d <<= 1) v |= __shfl_xor_sync(0xFFFFFFFFu, v, d);
    return {(lane & (B - 1)) == 0 && t < n, v != 0, t >> block_log2};
  }
  running |= __any_sync(0xFFFFFFFFu, flag) ? 1u : 0u;
  const bool ends = ((base + 32) & (B - 1)) == 0 || base + 32 >= n;
  BlockReport r{ends && lane == 0, running != 0, base >> block_log2};
  if (ends) running = 0;
  return r;
}

// A finite element with a non-zero magnitude (what makes a block scale matter).
__device__ inline bool finite_nonzero(uint32_t bits, const DtypeShape& s) {
  const uint32_t exp_mask = (1u << s.exp_bits) - 1u;
  const uint32_t magnitude = bits & ((1u << (s.exp_bits + s.man_bits)) - 1u);
  return ((bits >> s.man_bits) & exp_mask) != exp_mask && magnitude != 0;
}

}  // namespace nz::kernels
