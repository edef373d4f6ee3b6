// test_bf16_safetensors.cpp: bf16 rounding, and minifw's use of the
// safetensors reader (src/util) and weight tiling on the real weight files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "bf16.h"
#include "util/safetensors.h"
#include "weight_source.h"

namespace minifw {
namespace {

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808000)), 0x3f80);  // tie, even stays
  EXPECT_EQ(float_to_bf16(from_bits(0x3f818000)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808001)), 0x3f81);  // above the tie
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // overflows to inf
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_float(0xc040), -3.0f);
}

TEST(Safetensors, ReadsTheRealBf16File) {
  nz::util::SafetensorsFile file;
  std::string error;
  ASSERT_TRUE(nz::util::load_safetensors(std::string(MINIFW_WEIGHTS_DIR) + "/gpt-neo-125m-attn-bf16.safetensors",
                                         file, error))
      << error;
  ASSERT_FALSE(file.tensors().empty());
  const auto& t = file.tensors()[0];
  EXPECT_EQ(t.name, "h.0.attn.query.weight");
  EXPECT_EQ(t.dtype, "BF16");
  ASSERT_EQ(t.shape.size(), 2u);
  EXPECT_EQ(t.shape[0], 768u);
  EXPECT_EQ(t.end - t.begin, 768u * 768u * 2u);
}

TEST(Safetensors, MissingFileIsAnError) {
  nz::util::SafetensorsFile file;
  std::string error;
  EXPECT_FALSE(nz::util::load_safetensors("/nonexistent/x.safetensors", file, error));
  EXPECT_FALSE(error.empty());
}

TEST(WeightSource, TilesRealValues) {
  WeightSource source;
  std::string error;
  ASSERT_TRUE(source.load(MINIFW_WEIGHTS_DIR, error)) << error;
  EXPECT_EQ(source.bf16_pool_size(), 16u * 768u * 768u);
  std::vector<uint16_t> a(source.bf16_pool_size() + 10), b(100);
  source.fill_bf16(a, 3);
  source.fill_bf16(b, 3);
  EXPECT_TRUE(std::equal(b.begin(), b.end(), a.begin()));  // deterministic
  // Wraps around the pool.
  EXPECT_EQ(a[source.bf16_pool_size()], a[0]);
  std::vector<float> f(1000);
  source.fill_f32(f, 1);
  float max_abs = 0;
  for (float v : f) max_abs = std::max(max_abs, std::fabs(v));
  EXPECT_GT(max_abs, 0.0f);
  EXPECT_LT(max_abs, 100.0f);  // real weights, not garbage
}

}  // namespace
}  // namespace minifw
