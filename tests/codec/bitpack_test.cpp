#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "codec/bitpack.h"
#include "codec/cpu_level.h"
#include "codec/dtype.h"
#include "codec/split.h"

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

// The AVX-512 bf16 split must give the element-by-element split's bytes for
// every kept-bit count, with and without a partial last group of 32.
TEST(Split, Bf16Avx512MatchesElementByElement) {
  if (!nz::codec::cpu_has_avx512_vbmi()) GTEST_SKIP() << "CPU lacks AVX-512 VBMI";
  const nz::codec::DtypeLayout l = nz::codec::dtype_layout(NZ_BF16);
  std::mt19937 rng(8);
  for (uint32_t k = 0; k <= 7; ++k) {
    const nz::codec::FieldSplit split(l, k);
    for (size_t n : {0u, 1u, 31u, 32u, 33u, 64u, 100u, 1000u, 4099u}) {
      std::vector<uint16_t> x(n);
      for (auto& v : x) v = static_cast<uint16_t>(rng());
      const size_t raw_bytes = nz::codec::packed_section_bytes(n, 1 + k);
      std::vector<uint8_t> ref_sym(n), ref_raw(raw_bytes, 0), sym(n, 0xEE), raw(raw_bytes, 0);
      nz::codec::BitWriter w(ref_raw.data());
      for (size_t i = 0; i < n; ++i) {
        ref_sym[i] = static_cast<uint8_t>(split.symbol(x[i]));
        w.put(split.raw(x[i]), 1 + k);
      }
      w.finish();
      nz::codec::split_bf16_avx512(reinterpret_cast<const uint8_t*>(x.data()), n, k, sym.data(), raw.data());
      EXPECT_EQ(sym, ref_sym) << "k " << k << " n " << n;
      EXPECT_EQ(raw, ref_raw) << "k " << k << " n " << n;
    }
  }
}

// The AVX-512 lossless fp16/fp32 split must give the element-by-element
// split's bytes: random bit patterns (every special value class occurs),
// with and without a partial last group.
TEST(Split, Fp16Fp32Avx512MatchesElementByElement) {
  if (!nz::codec::cpu_has_avx512_vbmi()) GTEST_SKIP() << "CPU lacks AVX-512 VBMI";
  std::mt19937 rng(9);
  for (nz_dtype dtype : {NZ_FP16, NZ_FP32}) {
    const nz::codec::DtypeLayout l = nz::codec::dtype_layout(dtype);
    const nz::codec::FieldSplit split(l, l.mantissa_bits);
    const uint32_t raw_bits = 1 + l.mantissa_bits;
    for (size_t n : {0u, 1u, 15u, 16u, 17u, 31u, 32u, 33u, 64u, 100u, 1000u, 4099u, 65536u}) {
      std::vector<uint8_t> x(n * l.bytes);
      for (auto& b : x) b = static_cast<uint8_t>(rng());
      if (dtype == NZ_FP16 && n == 65536u) {
        for (size_t i = 0; i < n; ++i) {  // every fp16 bit pattern
          const uint16_t v = static_cast<uint16_t>(i);
          std::memcpy(x.data() + 2 * i, &v, 2);
        }
      }
      const size_t raw_bytes = nz::codec::packed_section_bytes(n, raw_bits);
      std::vector<uint8_t> ref_sym(n), ref_raw(raw_bytes, 0), sym(n, 0xEE), raw(raw_bytes, 0);
      nz::codec::BitWriter w(ref_raw.data());
      for (size_t i = 0; i < n; ++i) {
        uint32_t v = 0;
        std::memcpy(&v, x.data() + l.bytes * i, l.bytes);
        ref_sym[i] = static_cast<uint8_t>(split.symbol(v));
        w.put(split.raw(v), raw_bits);
      }
      w.finish();
      nz::codec::split_wide_avx512(dtype, x.data(), n, sym.data(), raw.data());
      EXPECT_EQ(sym, ref_sym) << "dtype " << dtype << " n " << n;
      EXPECT_EQ(raw, ref_raw) << "dtype " << dtype << " n " << n;
    }
  }
}
