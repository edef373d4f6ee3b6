// float_bits.h: conversions between fp32 and the 16-bit float formats, and
// the exponent-field statistics behind the entropy bound (docs/FORMAT.md §1).
// Conversions round to nearest, ties to even, like PyTorch's .to(bfloat16).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace nztools {

enum class FloatType { BF16, FP16, FP32 };

struct FloatLayout {
  int exponent_bits;
  int mantissa_bits;
  int bytes;
};

constexpr FloatLayout layout_of(FloatType t) {
  switch (t) {
    case FloatType::BF16: return {8, 7, 2};
    case FloatType::FP16: return {5, 10, 2};
    case FloatType::FP32: return {8, 23, 4};
  }
  return {0, 0, 0};
}

// Lower-case name as nzbench prints it: "bf16", "fp16", "fp32".
constexpr const char* name_of(FloatType t) {
  switch (t) {
    case FloatType::BF16: return "bf16";
    case FloatType::FP16: return "fp16";
    case FloatType::FP32: return "fp32";
  }
  return "?";
}

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_fp16(float f);
float fp16_to_f32(uint16_t h);

// Histogram of the exponent field over `count` elements of type `t` at `data`.
using ExponentHistogram = std::vector<uint64_t>;  // 2^E bins
ExponentHistogram exponent_histogram(const void* data, uint64_t count, FloatType t);
void add_histogram(ExponentHistogram& into, const ExponentHistogram& h);
// Shannon entropy in bits per symbol (0 for an empty histogram).
double entropy_bits(const ExponentHistogram& h);

// Element `i` of a buffer of type `t` as fp32 (exact for all three types).
inline float element_as_f32(const void* data, uint64_t i, FloatType t) {
  if (t == FloatType::FP32) {
    float f;
    std::memcpy(&f, static_cast<const uint8_t*>(data) + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, static_cast<const uint8_t*>(data) + 2 * i, 2);
  return t == FloatType::BF16 ? bf16_to_f32(h) : fp16_to_f32(h);
}

}  // namespace nztools
