#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "codec/bitpack.h"
#include "codec/dtype.h"

using namespace nz::codec;

TEST(Bitpack, RoundTripEveryWidth) {
  std::mt19937 rng(5);
  for (uint32_t width = 1; width <= 24; ++width) {
    for (uint64_t count : {0u, 1u, 7u, 31u, 32u, 33u, 1000u}) {
      std::vector<uint32_t> values(count);
      for (auto& v : values) v = rng() & ((1u << width) - 1);
      const uint64_t bytes = packed_section_bytes(count, width);
      std::vector<uint8_t> section(bytes + 8, 0);
      BitWriter w(section.data());
      for (auto v : values) w.put(v, width);
      EXPECT_LE(w.finish(), bytes);
      for (uint64_t i = 0; i < count; ++i) ASSERT_EQ(read_packed(section.data(), bytes, i, width), values[i]);
      EXPECT_TRUE(packed_tail_is_zero(section.data(), bytes, count * width));
    }
  }
}

TEST(Bitpack, LsbFirstLayout) {
  std::vector<uint8_t> s(4, 0);
  BitWriter w(s.data());
  w.put(0x5, 3);   // bits 0-2: 101
  w.put(0x3, 2);   // bits 3-4: 11
  w.put(0x1FF, 9); // bits 5-13
  w.finish();
  EXPECT_EQ(s[0], 0xFD);  // 1111 1101
  EXPECT_EQ(s[1], 0x3F);
  EXPECT_EQ(s[2], 0x00);
}

TEST(Bitpack, TailCheckSeesStrayBits) {
  std::vector<uint8_t> s(4, 0);
  s[1] = 0x10;  // bit 12
  EXPECT_TRUE(packed_tail_is_zero(s.data(), 4, 13));
  EXPECT_FALSE(packed_tail_is_zero(s.data(), 4, 12));
  s[1] = 0;
  s[3] = 1;
  EXPECT_FALSE(packed_tail_is_zero(s.data(), 4, 12));
}

TEST(Bitpack, SectionBytesArePaddedToFour) {
  EXPECT_EQ(packed_section_bytes(0, 8), 0u);
  EXPECT_EQ(packed_section_bytes(1, 8), 4u);
  EXPECT_EQ(packed_section_bytes(4, 8), 4u);
  EXPECT_EQ(packed_section_bytes(5, 8), 8u);
  EXPECT_EQ(packed_section_bytes(3, 11), 8u);
}
