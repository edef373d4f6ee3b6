// Every single-byte change of a compressed buffer must be reported.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "codec/decoder.h"
#include "codec/format.h"
#include "test_util.h"

namespace {

struct Case {
  const char* name;
  nz_dtype dtype;
  size_t n;
  nz_mode mode;
  uint32_t kept_bits;
  uint32_t block;
  bool random_data;  // incompressible: packed chunks
};

std::vector<uint8_t> make_buffer(const Case& k, std::vector<uint8_t>& original) {
  original = k.random_data ? nz::test::random_bytes(k.n * nz_dtype_size(k.dtype), 77)
                           : nz::test::gaussian_weights(k.dtype, k.n, 78);
  auto o = nz::test::options(k.dtype, 1024);
  o.mode = k.mode;
  o.kept_bits = k.kept_bits;
  o.block_size = k.block;
  auto c = nz::test::compress(original.data(), k.n, o);
  EXPECT_EQ(c.status, NZ_OK);
  return c.bytes;
}

// Decodes at every level this CPU has; all must agree on OK vs error.
nz_status decode_all(const std::vector<uint8_t>& b, std::vector<uint8_t>& out) {
  nz_status first = NZ_OK;
  bool have = false;
  for (auto impl : nz::codec::kAllCpuLevels) {
    if (!nz::codec::cpu_level_supported(impl)) continue;
    nz_status st = nz::codec::decompress(b.data(), b.size(), out.data(), out.size(), 1, impl);
    if (!have) first = st;
    have = true;
    EXPECT_EQ(st == NZ_OK, first == NZ_OK);
  }
  return first;
}

}  // namespace

class Corruption : public ::testing::TestWithParam<Case> {};

TEST_P(Corruption, EverySingleByteChangeIsAnError) {
  const Case& k = GetParam();
  std::vector<uint8_t> original;
  auto good = make_buffer(k, original);
  nz_info info;
  ASSERT_EQ(nz_inspect(good.data(), good.size(), &info), NZ_OK);
  if (!k.random_data) {
    EXPECT_GT(info.coded_chunks, 0u);
  }
  if (k.random_data) {
    EXPECT_GT(info.packed_chunks, 0u);
  }
  std::vector<uint8_t> out(info.original_bytes + 64);
  ASSERT_EQ(decode_all(good, out), NZ_OK);
  std::mt19937 rng(5);
  auto b = good;
  for (size_t i = 0; i < b.size(); ++i) {
    uint8_t r = static_cast<uint8_t>(rng() | 1);  // a non-zero xor
    for (uint8_t x : {uint8_t{0x01}, uint8_t{0xFF}, r}) {
      b[i] ^= x;
      nz_status st = decode_all(b, out);
      EXPECT_NE(st, NZ_OK) << k.name << ": byte " << i << " xor " << int(x);
      b[i] ^= x;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Buffers, Corruption,
    ::testing::Values(Case{"bf16_rans", NZ_BF16, 2100, NZ_LOSSLESS, 0, 0, false},
                      Case{"bf16_packed", NZ_BF16, 1100, NZ_LOSSLESS, 0, 0, true},
                      Case{"fp16_rans", NZ_FP16, 1500, NZ_LOSSLESS, 0, 0, false},
                      Case{"fp32_rans", NZ_FP32, 1100, NZ_LOSSLESS, 0, 0, false},
                      Case{"fp32_packed", NZ_FP32, 1030, NZ_LOSSLESS, 0, 0, true},
                      Case{"bf16_lossy_k3", NZ_BF16, 1500, NZ_LOSSY, 3, 0, false},
                      Case{"fp16_lossy_k0", NZ_FP16, 1100, NZ_LOSSY, 0, 0, false}),
    [](const auto& info) { return std::string(info.param.name); });

// With block scales the structural checks are weaker: a changed scale code
// that decodes to the same bytes (rounding to the dtype absorbs it) cannot be
// told from the original. Everything else must still be caught, and nothing
// may decode to different bytes without an error.
TEST(CorruptionBlocks, ChangesAreErrorsOrHarmless) {
  for (nz_dtype dtype : {NZ_BF16, NZ_FP16}) {
    Case k{"blocks", dtype, 1100, NZ_LOSSY, 2, 64, false};
    std::vector<uint8_t> original;
    auto good = make_buffer(k, original);
    nz_info info;
    ASSERT_EQ(nz_inspect(good.data(), good.size(), &info), NZ_OK);
    std::vector<uint8_t> expected(info.original_bytes), out(info.original_bytes);
    ASSERT_EQ(decode_all(good, expected), NZ_OK);
    auto b = good;
    size_t undetected = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      for (uint8_t x : {uint8_t{0x01}, uint8_t{0xFF}, uint8_t{0x06}}) {
        b[i] ^= x;
        if (decode_all(b, out) == NZ_OK) {
          ++undetected;
          EXPECT_EQ(out, expected) << "byte " << i << " xor " << int(x);
        }
        b[i] ^= x;
      }
    }
    // Only scale bytes can go unnoticed: at most one per block per xor value.
    EXPECT_LE(undetected, 3u * ((1100 + 63) / 64));
  }
}

TEST(Corruption, MislabelledDtypeIsAnError) {
  auto data = nz::test::gaussian_weights(NZ_BF16, 2048, 1);
  auto c = nz::test::compress(data.data(), 2048, nz::test::options(NZ_BF16, 1024));
  ASSERT_EQ(c.status, NZ_OK);
  for (uint8_t d : {uint8_t{NZ_FP16}, uint8_t{NZ_FP32}}) {
    auto b = c.bytes;
    b[6] = d;
    // Resealing the header checksum too: the layout must still disagree.
    nz::codec::Header h = nz::codec::read_header(b.data());
    h.header_checksum = nz::codec::header_checksum_of(b.data(), h.payload_offset());
    nz::codec::write_header(h, b.data());
    std::vector<uint8_t> out(8192);
    EXPECT_NE(nz_decompress(b.data(), b.size(), out.data(), out.size(), 1), NZ_OK) << int(d);
  }
}
