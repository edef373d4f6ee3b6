#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

#include "codec/dtype.h"
#include "codec/element_io.h"
#include "codec/format.h"
#include "codec/decoder.h"
#include "codec/lossy.h"
#include "test_util.h"

using namespace nz::codec;

namespace {

double element_value(uint32_t bits, const DtypeLayout& l) {
  return static_cast<double>(std::bit_cast<float>(element_to_f32_bits(bits, l)));
}

// Independent reference for round_k on an element of the dtype itself:
// compare the two neighbouring K-bit values in double precision.
uint32_t reference_round(uint32_t x, const DtypeLayout& l, uint32_t k) {
  const uint32_t sign = x & (1u << (l.exponent_bits + l.mantissa_bits));
  const uint32_t mag = x & ~sign;
  const uint32_t step = 1u << (l.mantissa_bits - k);
  const uint32_t down = mag & ~(step - 1);
  const uint32_t up = down + step;
  const double v = element_value(mag, l);
  const double dd = v - element_value(down, l);
  const uint32_t inf = ((1u << l.exponent_bits) - 1) << l.mantissa_bits;
  uint32_t pick;
  if (down == mag) {
    pick = down;
  } else {
    const double du = up >= inf ? INFINITY : element_value(up, l) - v;
    if (dd < du) pick = down;
    else if (du < dd) pick = up;
    else pick = (down & step) == 0 ? down : up;
  }
  if (pick >= inf) pick = (inf - (1u << l.mantissa_bits)) | (((1u << k) - 1) << (l.mantissa_bits - k));
  return sign | pick;
}

std::vector<uint8_t> lossy_round_trip(const std::vector<uint8_t>& data, nz_dtype dtype, uint32_t k,
                                      uint32_t block, nz_status* status = nullptr) {
  const size_t n = data.size() / nz_dtype_size(dtype);
  auto o = nz::test::options(dtype, 1024);
  o.mode = NZ_LOSSY;
  o.kept_bits = k;
  o.block_size = block;
  auto c = nz::test::compress(data.data(), n, o);
  if (status) *status = c.status;
  if (c.status != NZ_OK) return {};
  std::vector<uint8_t> out;
  EXPECT_EQ(nz::test::decompress(c.bytes, out), NZ_OK);
  return out;
}

}  // namespace

TEST(RoundK, HandPickedCases) {
  const DtypeLayout bf16 = dtype_layout(NZ_BF16);
  // 1 + 2^-7 + 2^-8 ... as binary32, kept 7 bits: ties go to even.
  EXPECT_EQ(round_k(0x3F808000u, bf16, 7, true), 0x3F80u);  // 1 + 2^-8: tie, 1.0 is even
  EXPECT_EQ(round_k(0x3F818000u, bf16, 7, true), 0x3F82u);  // 1 + 3*2^-8: tie, round up to even
  EXPECT_EQ(round_k(0x3FFFC000u, bf16, 6, true), 0x4000u);  // carry into the exponent
  EXPECT_EQ(round_k(0x7F7FFFFFu, bf16, 7, true), 0x7F7Fu);  // overflow clamps to the largest finite
  EXPECT_EQ(round_k(0x7F7FFFFFu, bf16, 7, false), 0x7F80u); // IEEE conversion overflows to inf
  EXPECT_EQ(round_k(0xFF800000u, bf16, 3, true), 0xFF80u);  // -inf kept
  EXPECT_EQ(round_k(0xFFC12345u, bf16, 3, true), 0xFFC0u);  // NaN -> quiet NaN, sign kept
  EXPECT_EQ(round_k(0x80000000u, bf16, 0, true), 0x8000u);  // -0 kept
  const DtypeLayout fp16 = dtype_layout(NZ_FP16);
  EXPECT_EQ(round_k(0x3F800000u, fp16, 10, false), 0x3C00u);  // 1.0
  EXPECT_EQ(round_k(0x33800000u, fp16, 10, false), 0x0001u);  // 2^-24, the smallest subnormal
  EXPECT_EQ(round_k(0x33000000u, fp16, 10, false), 0x0000u);  // 2^-25: tie to even (zero)
  EXPECT_EQ(round_k(0x477FF000u, fp16, 10, false), 0x7C00u);  // 65520 rounds to inf
  EXPECT_EQ(round_k(0x477FF000u, fp16, 10, true), 0x7BFFu);   // ... or clamps
}

TEST(RoundK, ExhaustiveBf16AndFp16AgainstReference) {
  for (nz_dtype dtype : {NZ_BF16, NZ_FP16}) {
    const DtypeLayout l = dtype_layout(dtype);
    for (uint32_t k = 0; k < l.mantissa_bits; ++k) {
      for (uint32_t x = 0; x < 65536; ++x) {
        if (!element_is_finite(x, l)) continue;
        const uint32_t got = round_k(element_to_f32_bits(x, l), l, k, true);
        ASSERT_EQ(got, reference_round(x, l, k)) << "dtype " << dtype << " K " << k << " x " << x;
      }
    }
  }
}

TEST(Lossy, ConversionsAreExact) {
  for (nz_dtype dtype : {NZ_BF16, NZ_FP16}) {
    const DtypeLayout l = dtype_layout(dtype);
    for (uint32_t x = 0; x < 65536; ++x) {
      if (element_is_nan(x, l)) continue;
      ASSERT_EQ(f32_bits_to_element(element_to_f32_bits(x, l), l), x);
    }
  }
}

TEST(Lossy, ScaleCodes) {
  EXPECT_EQ(scale_code(0), 0u);
  EXPECT_EQ(scale_code(std::bit_cast<uint32_t>(1.0f)), 0u);
  EXPECT_EQ(scale_code(std::bit_cast<uint32_t>(1.5f)), 128u);
  EXPECT_EQ(scale_code(std::bit_cast<uint32_t>(-0.0f) & 0x7FFFFFFF), 0u);
  EXPECT_EQ(scale_code(std::bit_cast<uint32_t>(3.999f)), 255u);
  EXPECT_EQ(scale_code(0x00600000u), 128u);  // binary32 subnormal 1.5 * 2^-127
  EXPECT_EQ(scale_value(128), 1.5f);
}

class LossyBound : public ::testing::TestWithParam<nz_dtype> {};

TEST_P(LossyBound, EveryKWithAndWithoutBlocks) {
  const nz_dtype dtype = GetParam();
  const DtypeLayout l = dtype_layout(dtype);
  const size_t n = 3000;
  auto data = nz::test::gaussian_weights(dtype, n, 21, 0.05f);
  // A few specials: zeros, infinities, a large and a tiny value.
  const uint32_t inf = ((1u << l.exponent_bits) - 1) << l.mantissa_bits;
  const uint32_t sign = 1u << (l.exponent_bits + l.mantissa_bits);
  store_element(data.data(), 5, l.bytes, 0);
  store_element(data.data(), 6, l.bytes, sign);
  store_element(data.data(), 7, l.bytes, inf);
  store_element(data.data(), 8, l.bytes, inf | sign);
  store_element(data.data(), 9, l.bytes, 1);  // smallest subnormal
  const double min_normal = std::ldexp(1.0, 2 - (1 << (l.exponent_bits - 1)));
  for (uint32_t k = 0; k < l.mantissa_bits; ++k) {
    for (uint32_t block : {0u, 64u, 512u}) {
      auto out = lossy_round_trip(data, dtype, k, block);
      ASSERT_EQ(out.size(), data.size());
      for (size_t i = 0; i < n; ++i) {
        const uint32_t xb = load_element(data.data(), i, l.bytes);
        const uint32_t yb = load_element(out.data(), i, l.bytes);
        if (!element_is_finite(xb, l)) {
          EXPECT_EQ(yb, xb) << "infinities are kept";
          continue;
        }
        const double x = element_value(xb, l), y = element_value(yb, l);
        ASSERT_TRUE(std::isfinite(y));
        if (std::fabs(x) < min_normal || std::fabs(y) < min_normal) continue;
        if (block == 0) {
          const double ulp = std::ldexp(1.0, std::ilogb(x) - static_cast<int>(k) - 1);
          ASSERT_LE(std::fabs(y - x), ulp) << "K " << k << " i " << i;
        } else {
          const double rel = std::ldexp(1.0, -static_cast<int>(k) - 1) +
                             std::ldexp(1.0, -static_cast<int>(l.mantissa_bits) - 1) + std::ldexp(1.0, -22);
          ASSERT_LE(std::fabs(y - x) / std::fabs(x), rel) << "K " << k << " B " << block << " i " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtype, LossyBound, ::testing::Values(NZ_BF16, NZ_FP16, NZ_FP32),
                         [](const auto& info) {
                           return std::string(info.param == NZ_BF16 ? "bf16" : info.param == NZ_FP16 ? "fp16" : "fp32");
                         });

TEST(Lossy, NanWithZeroKeptBitsIsUnsupported) {
  for (nz_dtype dtype : {NZ_BF16, NZ_FP16, NZ_FP32}) {
    const DtypeLayout l = dtype_layout(dtype);
    auto data = nz::test::gaussian_weights(dtype, 2000, 1);
    store_element(data.data(), 1500, l.bytes, (((1u << l.exponent_bits) - 1) << l.mantissa_bits) | 1);
    nz_status st;
    for (uint32_t block : {0u, 64u}) {
      lossy_round_trip(data, dtype, 0, block, &st);
      EXPECT_EQ(st, NZ_ERR_UNSUPPORTED);
    }
    auto out = lossy_round_trip(data, dtype, 1, 0, &st);
    ASSERT_EQ(st, NZ_OK);
    EXPECT_TRUE(element_is_nan(load_element(out.data(), 1500, l.bytes), l));
  }
}

TEST(Lossy, Bf16BlockMaximumIsExact) {
  const DtypeLayout l = dtype_layout(NZ_BF16);
  auto data = nz::test::gaussian_weights(NZ_BF16, 4096, 8);
  for (uint32_t k : {0u, 1u, 3u}) {
    auto out = lossy_round_trip(data, NZ_BF16, k, 512);
    for (size_t b = 0; b < 8; ++b) {
      size_t arg = b * 512;
      for (size_t i = b * 512; i < (b + 1) * 512; ++i) {
        if (std::fabs(element_value(load_element(data.data(), i, 2), l)) >
            std::fabs(element_value(load_element(data.data(), arg, 2), l))) {
          arg = i;
        }
      }
      EXPECT_EQ(load_element(out.data(), arg, 2), load_element(data.data(), arg, 2)) << "K " << k << " block " << b;
    }
  }
}

TEST(Lossy, LossyOutputIsAFixedPointWithoutBlocks) {
  auto data = nz::test::gaussian_weights(NZ_FP16, 5000, 4);
  auto once = lossy_round_trip(data, NZ_FP16, 3, 0);
  auto twice = lossy_round_trip(once, NZ_FP16, 3, 0);
  EXPECT_EQ(once, twice);
}

TEST(Lossy, BadOptionsAreRejected) {
  auto o = nz::test::options(NZ_BF16);
  o.mode = NZ_LOSSY;
  o.kept_bits = 7;  // K must be < M
  EXPECT_EQ(nz_compress_bound(10, &o), 0u);
  o.kept_bits = 3;
  o.block_size = 100;  // not a power of two
  uint8_t src[20] = {}, dst[4096];
  size_t len;
  EXPECT_EQ(nz_compress(src, 10, &o, dst, sizeof(dst), &len), NZ_ERR_INVALID_ARGUMENT);
}

// The vector paths (lossy_avx2.cpp for every dtype, lossy_bf16_avx512.cpp),
// each through quantize_chunk / dequantize_chunk at its level, against the
// element-by-element reference: every 16-bit pattern of bf16 and fp16 (in
// order, so blocks share an exponent range and every scale code occurs; and
// shuffled), for fp32 every 16-bit pattern as the high half over pseudo-random
// low halves, real-looking weights, every K (fp32: a spread) and several
// block sizes. Results, scale codes and statuses must be identical.
namespace {

const char* dtype_name(nz_dtype d) { return d == NZ_BF16 ? "bf16" : d == NZ_FP16 ? "fp16" : "fp32"; }

std::vector<uint8_t> all_patterns(nz_dtype dtype, bool shuffled, bool with_nan) {
  const DtypeLayout l = dtype_layout(dtype);
  std::vector<uint32_t> v;
  for (uint32_t x = 0; x < 65536; ++x) {
    const uint32_t bits = l.bytes == 4 ? (x << 16) | ((x * 2654435761u) >> 16) : x;
    if (element_is_nan(bits, l) && !with_nan) continue;
    v.push_back(bits);
  }
  if (shuffled) {
    uint64_t state = 12345;
    for (size_t i = v.size(); i > 1; --i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      std::swap(v[i - 1], v[(state >> 33) % i]);
    }
  }
  std::vector<uint8_t> b(v.size() * l.bytes);
  for (size_t i = 0; i < v.size(); ++i) std::memcpy(b.data() + l.bytes * i, &v[i], l.bytes);
  return b;
}

std::vector<uint8_t> all_bf16_patterns(bool shuffled, bool with_nan) { return all_patterns(NZ_BF16, shuffled, with_nan); }

std::vector<uint32_t> kept_bits_to_test(nz_dtype dtype) {
  if (dtype == NZ_FP32) return {0, 1, 3, 7, 10, 15, 22};
  std::vector<uint32_t> v;
  for (uint32_t k = 0; k < dtype_layout(dtype).mantissa_bits; ++k) v.push_back(k);
  return v;
}

}  // namespace

// (dtype, level); AVX-512 has a bf16 path only (the others run AVX2's).
class LossyVector : public ::testing::TestWithParam<std::tuple<nz_dtype, CpuLevel>> {
 protected:
  void SetUp() override {
    if (!cpu_level_supported(level())) GTEST_SKIP() << "CPU lacks " << cpu_level_name(level());
  }
  static nz_dtype dtype() { return std::get<0>(GetParam()); }
  static CpuLevel level() { return std::get<1>(GetParam()); }
};

TEST_P(LossyVector, QuantizeMatchesReference) {
  const DtypeLayout l = dtype_layout(dtype());
  std::vector<std::vector<uint8_t>> inputs = {all_patterns(dtype(), false, true), all_patterns(dtype(), true, true),
                                              all_patterns(dtype(), false, false), all_patterns(dtype(), true, false),
                                              nz::test::gaussian_weights(dtype(), 20000 + 13, 3)};
  for (const auto& in : inputs) {
    const uint64_t n = in.size() / l.bytes;
    for (uint32_t k : kept_bits_to_test(dtype())) {
      for (uint32_t block_log2 : {0u, 1u, 3u, 5u, 9u}) {
        const uint64_t blocks = block_log2 ? (n + (1u << block_log2) - 1) >> block_log2 : 0;
        std::vector<uint8_t> ref(in.size(), 0xAA), got(in.size(), 0x55), ref_sc(blocks, 1), got_sc(blocks, 2);
        const nz_status rs = quantize_chunk_reference(in.data(), n, l, k, block_log2, ref.data(), ref_sc.data());
        const nz_status gs = quantize_chunk(in.data(), n, l, k, block_log2, got.data(), got_sc.data(), level());
        ASSERT_EQ(rs, gs) << "k " << k << " block_log2 " << block_log2;
        if (rs != NZ_OK) continue;
        ASSERT_EQ(ref, got) << "k " << k << " block_log2 " << block_log2;
        ASSERT_EQ(ref_sc, got_sc) << "k " << k << " block_log2 " << block_log2;
      }
    }
  }
}

TEST_P(LossyVector, DequantizeMatchesReference) {
  const DtypeLayout l = dtype_layout(dtype());
  for (const auto& in : {all_patterns(dtype(), false, true), all_patterns(dtype(), true, true)}) {
    const uint64_t n = in.size() / l.bytes;
    for (uint32_t block_log2 : {1u, 4u, 9u}) {
      const uint64_t blocks = (n + (1u << block_log2) - 1) >> block_log2;
      for (uint32_t variant = 0; variant < 4; ++variant) {
        // Even codes of every value (and 0); variant 2 odd ones (only bf16
        // rejects them); variant 3 puts an odd code last.
        std::vector<uint8_t> scales(blocks);
        for (uint64_t b = 0; b < blocks; ++b) {
          scales[b] = static_cast<uint8_t>(((b * 37 + variant * 11) % 128) * 2 + (variant == 2 ? 1 : 0));
        }
        if (variant == 3) scales.back() |= 1;
        auto ref = in, got = in;
        const bool rok = dequantize_chunk_reference(ref.data(), n, l, block_log2, scales.data());
        const bool gok = dequantize_chunk(got.data(), n, l, block_log2, scales.data(), level());
        ASSERT_EQ(rok, gok) << "block_log2 " << block_log2 << " variant " << variant;
        if (rok) {
          ASSERT_EQ(ref, got) << "block_log2 " << block_log2 << " variant " << variant;
        }
      }
    }
  }
  // A non-zero code on a block with no non-zero finite element is rejected by both.
  std::vector<uint8_t> zeros(32 * l.bytes, 0);
  zeros[l.bytes - 1] = 0x80;  // -0.0
  const uint8_t scales[2] = {0, 4};
  auto a = zeros, b = zeros;
  EXPECT_FALSE(dequantize_chunk_reference(a.data(), 32, l, 4, scales));
  EXPECT_FALSE(dequantize_chunk(b.data(), 32, l, 4, scales, level()));
}

INSTANTIATE_TEST_SUITE_P(DtypeLevel, LossyVector,
                         ::testing::Combine(::testing::Values(NZ_BF16, NZ_FP16, NZ_FP32),
                                            ::testing::Values(CpuLevel::kAvx2, CpuLevel::kAvx512)),
                         [](const auto& info) {
                           return std::string(dtype_name(std::get<0>(info.param))) + "_" +
                                  cpu_level_name(std::get<1>(info.param));
                         });

// Whole-buffer lossy round trips decode to the same bytes at every level
// (the vector ones fuse merge and hash for bf16).
TEST(LossyBf16, EveryDecoderGivesTheSameOutput) {
  for (uint32_t k : {0u, 1u, 3u, 6u}) {
    for (uint32_t block : {0u, 2u, 16u, 32u, 64u, 512u}) {
      for (size_t n : {31u, 1000u, 5000u + 17u}) {
        auto data = nz::test::gaussian_weights(NZ_BF16, n, n + k);
        auto o = nz::test::options(NZ_BF16, 1024);
        o.mode = NZ_LOSSY;
        o.kept_bits = k;
        o.block_size = block;
        auto c = nz::test::compress(data.data(), n, o);
        ASSERT_EQ(c.status, NZ_OK);
        std::vector<uint8_t> reference;
        for (auto impl : {CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512}) {
          if (!cpu_level_supported(impl)) continue;
          std::vector<uint8_t> out(data.size() + 1, 0xCD);
          ASSERT_EQ(decompress(c.bytes.data(), c.bytes.size(), out.data(), out.size(), 1, impl), NZ_OK)
              << "k " << k << " block " << block << " n " << n << " impl " << static_cast<int>(impl);
          EXPECT_EQ(out.back(), 0xCD) << "wrote past the output";
          if (reference.empty()) {
            reference = out;
          } else {
            EXPECT_EQ(out, reference) << "k " << k << " block " << block << " n " << n;
          }
        }
      }
    }
  }
}

// Weights salted with every bf16 bit pattern (NaN, infinities, zeros,
// subnormals; one element in 8, so that rANS still pays and the fused
// decoders run) through every level: the vector decoders that scale blocks
// inside their loop must match the scalar reference byte for byte.
TEST(LossyBf16, EveryPatternDecodesTheSameAtEveryLevel) {
  const auto patterns = all_bf16_patterns(true, true);
  const uint64_t n = patterns.size() / 2 * 8;
  auto data = nz::test::gaussian_weights(NZ_BF16, n, 99);
  for (uint64_t i = 0; i < n / 8; ++i) std::memcpy(data.data() + 2 * (8 * i + i % 8), patterns.data() + 2 * i, 2);
  for (uint32_t k : {1u, 3u, 6u}) {
    for (uint32_t block : {32u, 64u, 512u}) {
      auto o = nz::test::options(NZ_BF16, 4096);
      o.mode = NZ_LOSSY;
      o.kept_bits = k;
      o.block_size = block;
      auto c = nz::test::compress(data.data(), n, o);
      ASSERT_EQ(c.status, NZ_OK);
      nz_info info{};
      ASSERT_EQ(nz_inspect(c.bytes.data(), c.bytes.size(), &info), NZ_OK);
      ASSERT_GT(info.coded_chunks, info.chunk_count / 2) << "the fused decoders would not run";
      std::vector<uint8_t> reference(data.size());
      ASSERT_EQ(decompress(c.bytes.data(), c.bytes.size(), reference.data(), reference.size(), 1, CpuLevel::kScalar), NZ_OK);
      for (CpuLevel level : {CpuLevel::kAvx2, CpuLevel::kAvx512}) {
        if (!cpu_level_supported(level)) continue;
        std::vector<uint8_t> out(data.size(), 0xCD);
        ASSERT_EQ(decompress(c.bytes.data(), c.bytes.size(), out.data(), out.size(), 1, level), NZ_OK)
            << "k " << k << " block " << block << " " << cpu_level_name(level);
        EXPECT_EQ(out, reference) << "k " << k << " block " << block << " " << cpu_level_name(level);
      }
    }
  }
}

// Invalid scale codes (odd for bf16, or non-zero on a block without a
// non-zero element) are structural errors for every decoder (the fused
// vector ones included), not checksum errors: a non-zero code on a zero
// block even decodes to the right bytes.
TEST(LossyBf16, InvalidScaleCodesAreCorruptChunks) {
  const size_t n = 4096;
  auto data = nz::test::gaussian_weights(NZ_BF16, n, 21);
  std::memset(data.data() + 2 * 64, 0, 2 * 32);  // block 2 of chunk 0 is all zeros: code 0
  auto o = nz::test::options(NZ_BF16, 1024);
  o.mode = NZ_LOSSY;
  o.kept_bits = 3;
  o.block_size = 32;
  auto c = nz::test::compress(data.data(), n, o);
  ASSERT_EQ(c.status, NZ_OK);
  ParsedBuffer buf;
  ASSERT_EQ(parse_buffer(c.bytes.data(), c.bytes.size(), buf), NZ_OK);
  ASSERT_EQ(buf.chunk_entry(0).kind, static_cast<uint32_t>(ChunkKind::kRans));
  const size_t scales = buf.payload_offset + buf.chunk_entry(0).offset + kStateBytes;
  ASSERT_EQ(c.bytes[scales + 2], 0);
  for (auto [block, value] : {std::pair{size_t{5}, uint8_t{1}}, std::pair{size_t{2}, uint8_t{2}}}) {
    auto b = c.bytes;
    b[scales + block] ^= value;
    for (auto impl : {CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512}) {
      if (!cpu_level_supported(impl)) continue;
      std::vector<uint8_t> out(data.size());
      EXPECT_EQ(decompress(b.data(), b.size(), out.data(), out.size(), 1, impl), NZ_ERR_CORRUPT_CHUNK)
          << "block " << block << " impl " << static_cast<int>(impl);
    }
  }
}
