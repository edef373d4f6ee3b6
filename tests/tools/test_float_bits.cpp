// Tests of the fp32 -> bf16/fp16 casts (round to nearest even) and the entropy helpers.
#include <gtest/gtest.h>

#include <cmath>

#include "common/float_bits.h"

using namespace nztools;

TEST(FloatBits, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3F808001u)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x7F7FFFFFu)), 0x7F80);  // max float rounds to inf
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  const uint16_t nan = f32_to_bf16(f32_from_bits(0x7F800001u));  // signalling NaN with a low payload
  EXPECT_EQ(nan & 0x7F80, 0x7F80);
  EXPECT_NE(nan & 0x7F, 0);  // stays NaN
}

TEST(FloatBits, Fp16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_fp16(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7C00);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even (0)
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: tie to even (2)
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(f32_to_fp16(std::ldexp(1023.5f, -24)), 0x0400);  // subnormal rounding carries into the exponent
  EXPECT_EQ(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie, even stays
  EXPECT_EQ(f32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_fp16(INFINITY), 0x7C00);
}

TEST(FloatBits, Fp16RoundTripsEveryNonNaNPattern) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0) continue;  // NaN
    EXPECT_EQ(f32_to_fp16(fp16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(FloatBits, ExponentEntropy) {
  const uint16_t data[4] = {0x3F80, 0x3F81, 0x4000, 0xBF80};  // exponents 127, 127, 128, 127
  const auto h = exponent_histogram(data, 4, FloatType::BF16);
  ASSERT_EQ(h.size(), 256u);
  EXPECT_EQ(h[127], 3u);
  EXPECT_EQ(h[128], 1u);
  EXPECT_NEAR(entropy_bits(h), 0.8112781244591328, 1e-12);
  EXPECT_EQ(entropy_bits(ExponentHistogram(256, 0)), 0.0);
}
