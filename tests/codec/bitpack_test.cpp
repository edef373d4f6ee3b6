#include <gtest/gtest.h>

#include <cstring>
#include <memory>
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
      // Read back sequentially from several starting values, from an
      // allocation of exactly the section's size (ASan sees any read past it).
      const std::unique_ptr<uint8_t[]> exact(new uint8_t[bytes]);
      std::memcpy(exact.get(), section.data(), bytes);
      for (uint64_t first : {uint64_t{0}, uint64_t{1}, uint64_t{5}, count / 2, count > 0 ? count - 1 : 0}) {
        if (first >= count) continue;
        BitReader r(exact.get(), bytes, first, width);
        for (uint64_t i = first; i < count; ++i) ASSERT_EQ(r.get(), values[i]) << "width " << width << " first " << first;
      }
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

namespace {

// The element-by-element split, the reference.
void reference_split(nz_dtype dtype, uint32_t k, const uint8_t* x, size_t n, std::vector<uint8_t>& sym,
                     std::vector<uint8_t>& raw) {
  sym.assign(n, 0);
  raw.assign(nz::codec::packed_section_bytes(n, 1 + k), 0);
  nz::codec::split_elements(nz::codec::dtype_layout(dtype), k, x, 0, n, sym.data(), raw.data());
}

// Random elements (every special value class occurs), or for fp16/bf16 with
// n = 65536 every bit pattern.
std::vector<uint8_t> split_input(nz_dtype dtype, size_t n, std::mt19937& rng) {
  const size_t bytes = nz_dtype_size(dtype);
  std::vector<uint8_t> x(n * bytes);
  for (auto& b : x) b = static_cast<uint8_t>(rng());
  if (bytes == 2 && n == 65536u) {
    for (size_t i = 0; i < n; ++i) {
      const uint16_t v = static_cast<uint16_t>(i);
      std::memcpy(x.data() + 2 * i, &v, 2);
    }
  }
  return x;
}

const size_t kSplitSizes[] = {0u, 1u, 15u, 16u, 17u, 31u, 32u, 33u, 64u, 100u, 1000u, 4099u, 65536u};

}  // namespace

// The AVX-512 bf16 split must give the element-by-element split's bytes for
// every kept-bit count, with and without a partial last group of 32.
TEST(Split, Bf16Avx512MatchesElementByElement) {
  if (!nz::codec::cpu_has_avx512_vbmi()) GTEST_SKIP() << "CPU lacks AVX-512 VBMI";
  std::mt19937 rng(8);
  for (uint32_t k = 0; k <= 7; ++k) {
    for (size_t n : kSplitSizes) {
      const auto x = split_input(NZ_BF16, n, rng);
      std::vector<uint8_t> ref_sym, ref_raw;
      reference_split(NZ_BF16, k, x.data(), n, ref_sym, ref_raw);
      std::vector<uint8_t> sym(n, 0xEE), raw(ref_raw.size(), 0);
      nz::codec::split_bf16_avx512(x.data(), n, k, sym.data(), raw.data());
      EXPECT_EQ(sym, ref_sym) << "k " << k << " n " << n;
      EXPECT_EQ(raw, ref_raw) << "k " << k << " n " << n;
    }
  }
}

// The AVX-512 lossless fp16/fp32 split must give the element-by-element
// split's bytes, with and without a partial last group.
TEST(Split, Fp16Fp32Avx512MatchesElementByElement) {
  if (!nz::codec::cpu_has_avx512_vbmi()) GTEST_SKIP() << "CPU lacks AVX-512 VBMI";
  std::mt19937 rng(9);
  for (nz_dtype dtype : {NZ_FP16, NZ_FP32}) {
    const uint32_t k = nz::codec::dtype_layout(dtype).mantissa_bits;
    for (size_t n : kSplitSizes) {
      const auto x = split_input(dtype, n, rng);
      std::vector<uint8_t> ref_sym, ref_raw;
      reference_split(dtype, k, x.data(), n, ref_sym, ref_raw);
      std::vector<uint8_t> sym(n, 0xEE), raw(ref_raw.size(), 0);
      nz::codec::split_wide_avx512(dtype, x.data(), n, sym.data(), raw.data());
      EXPECT_EQ(sym, ref_sym) << "dtype " << dtype << " n " << n;
      EXPECT_EQ(raw, ref_raw) << "dtype " << dtype << " n " << n;
    }
  }
}

// The AVX2 split (bf16 any K, lossless fp16 and fp32) must give the
// element-by-element split's bytes, and write nothing but zeros into the
// slack after the section.
TEST(Split, Avx2MatchesElementByElement) {
  if (!nz::codec::cpu_level_supported(nz::codec::CpuLevel::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2";
  std::mt19937 rng(10);
  struct Case {
    nz_dtype dtype;
    uint32_t k;
  };
  std::vector<Case> cases = {{NZ_FP16, 10}, {NZ_FP32, 23}};
  for (uint32_t k = 0; k <= 7; ++k) cases.push_back({NZ_BF16, k});
  for (const Case& c : cases) {
    for (size_t n : kSplitSizes) {
      const auto x = split_input(c.dtype, n, rng);
      std::vector<uint8_t> ref_sym, ref_raw;
      reference_split(c.dtype, c.k, x.data(), n, ref_sym, ref_raw);
      std::vector<uint8_t> sym(n, 0xEE), raw(ref_raw.size() + nz::codec::kSplitSlack, 0);
      nz::codec::split_avx2(c.dtype, c.k, x.data(), n, sym.data(), raw.data());
      EXPECT_EQ(sym, ref_sym) << "dtype " << c.dtype << " k " << c.k << " n " << n;
      ref_raw.resize(raw.size(), 0);
      EXPECT_EQ(raw, ref_raw) << "dtype " << c.dtype << " k " << c.k << " n " << n;
    }
  }
}
