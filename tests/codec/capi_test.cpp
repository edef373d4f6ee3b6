#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "neuzip/neuzip.h"
#include "neuzip/neuzip.hpp"
#include "test_util.h"

TEST(CApi, DefaultsAndSizes) {
  nz_options o;
  nz_options_default(&o, NZ_FP16);
  EXPECT_EQ(o.dtype, NZ_FP16);
  EXPECT_EQ(o.mode, NZ_LOSSLESS);
  EXPECT_EQ(o.chunk_elems, NZ_DEFAULT_CHUNK_ELEMS);
  EXPECT_EQ(o.prob_bits, NZ_DEFAULT_PROB_BITS);
  EXPECT_EQ(nz_dtype_size(NZ_BF16), 2u);
  EXPECT_EQ(nz_dtype_size(NZ_FP16), 2u);
  EXPECT_EQ(nz_dtype_size(NZ_FP32), 4u);
  EXPECT_EQ(nz_dtype_size(static_cast<nz_dtype>(9)), 0u);
  EXPECT_GE(nz_compress_bound(0, &o), 64u);
  EXPECT_EQ(nz_compress_bound(10, nullptr), 0u);
}

TEST(CApi, ErrorStringsAreDistinct) {
  for (int a = 0; a <= NZ_ERR_DTYPE_MISMATCH; ++a) {
    ASSERT_NE(nz_error_string(static_cast<nz_status>(a)), nullptr);
    for (int b = 0; b < a; ++b) {
      EXPECT_STRNE(nz_error_string(static_cast<nz_status>(a)), nz_error_string(static_cast<nz_status>(b)));
    }
  }
  EXPECT_STREQ(nz_error_string(static_cast<nz_status>(99)), "unknown status");
}

TEST(CApi, ArgumentErrors) {
  auto data = nz::test::gaussian_weights(NZ_BF16, 100, 1);
  nz_options o = nz::test::options(NZ_BF16);
  std::vector<uint8_t> dst(nz_compress_bound(100, &o));
  size_t len = 0;
  EXPECT_EQ(nz_compress(nullptr, 100, &o, dst.data(), dst.size(), &len), NZ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(nz_compress(data.data(), 100, nullptr, dst.data(), dst.size(), &len), NZ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(nz_compress(data.data(), 100, &o, dst.data(), dst.size(), nullptr), NZ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(nz_compress(data.data(), 100, &o, dst.data(), 10, &len), NZ_ERR_DST_TOO_SMALL);
  o.chunk_elems = 1000;
  EXPECT_EQ(nz_compress(data.data(), 100, &o, dst.data(), dst.size(), &len), NZ_ERR_INVALID_ARGUMENT);
  o = nz::test::options(NZ_BF16);
  o.prob_bits = 16;
  EXPECT_EQ(nz_compress(data.data(), 100, &o, dst.data(), dst.size(), &len), NZ_ERR_INVALID_ARGUMENT);
  o = nz::test::options(NZ_BF16);
  o.dtype = static_cast<nz_dtype>(7);
  EXPECT_EQ(nz_compress(data.data(), 100, &o, dst.data(), dst.size(), &len), NZ_ERR_INVALID_ARGUMENT);

  o = nz::test::options(NZ_BF16);
  ASSERT_EQ(nz_compress(data.data(), 100, &o, dst.data(), dst.size(), &len), NZ_OK);
  std::vector<uint8_t> out(200);
  EXPECT_EQ(nz_decompress(dst.data(), len, out.data(), 199, 1), NZ_ERR_DST_TOO_SMALL);
  EXPECT_EQ(nz_decompress(dst.data(), len, nullptr, 200, 1), NZ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(nz_decompress(nullptr, len, out.data(), 200, 1), NZ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(nz_inspect(dst.data(), len, nullptr), NZ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(nz_decompress(dst.data(), len, out.data(), 200, 1), NZ_OK);
  EXPECT_EQ(std::memcmp(out.data(), data.data(), 200), 0);
  uint8_t junk[100] = {1, 2, 3, 4};
  nz_info info;
  EXPECT_EQ(nz_inspect(junk, sizeof(junk), &info), NZ_ERR_BAD_MAGIC);
  EXPECT_EQ(nz_inspect(junk, 3, &info), NZ_ERR_TRUNCATED);
}

// The encoder works in the destination when it has compress_bound bytes and
// in scratch memory otherwise: both give the same bytes, a destination of
// exactly the compressed size works, one byte less is refused, and nothing
// is written past the capacity.
TEST(CApi, DestinationOfExactlyTheCompressedSize) {
  auto data = nz::test::gaussian_weights(NZ_BF16, 5000, 3);
  for (uint32_t threads : {1u, 2u}) {
    const nz_options o = nz::test::options(NZ_BF16, 1024, threads);
    const auto c = nz::test::compress(data.data(), 5000, o);
    ASSERT_EQ(c.status, NZ_OK);
    ASSERT_LT(c.bytes.size(), nz_compress_bound(5000, &o));
    std::vector<uint8_t> exact(c.bytes.size() + 1, 0xEE);
    size_t len = 0;
    ASSERT_EQ(nz_compress(data.data(), 5000, &o, exact.data(), c.bytes.size(), &len), NZ_OK);
    EXPECT_EQ(len, c.bytes.size());
    EXPECT_TRUE(std::equal(c.bytes.begin(), c.bytes.end(), exact.begin()));
    EXPECT_EQ(exact.back(), 0xEE) << "wrote past the capacity";
    std::fill(exact.begin(), exact.end(), 0xEE);
    EXPECT_EQ(nz_compress(data.data(), 5000, &o, exact.data(), c.bytes.size() - 1, &len), NZ_ERR_DST_TOO_SMALL);
    EXPECT_EQ(exact[c.bytes.size() - 1], 0xEE) << "wrote past the capacity";
  }
}

TEST(CApi, InspectDescribesTheBuffer) {
  auto data = nz::test::gaussian_weights(NZ_FP32, 5000, 2);
  auto c = nz::test::compress(data.data(), 5000, nz::test::options(NZ_FP32, 2048));
  ASSERT_EQ(c.status, NZ_OK);
  nz_info info;
  ASSERT_EQ(nz_inspect(c.bytes.data(), c.bytes.size(), &info), NZ_OK);
  EXPECT_EQ(info.dtype, NZ_FP32);
  EXPECT_EQ(info.mode, NZ_LOSSLESS);
  EXPECT_EQ(info.element_count, 5000u);
  EXPECT_EQ(info.original_bytes, 20000u);
  EXPECT_EQ(info.compressed_bytes, c.bytes.size());
  EXPECT_EQ(info.chunk_elems, 2048u);
  EXPECT_EQ(info.chunk_count, 3u);
  EXPECT_EQ(info.kept_bits, 23u);
  EXPECT_EQ(info.block_size, 0u);
  EXPECT_EQ(info.prob_bits, 11u);
  EXPECT_EQ(info.coded_chunks + info.packed_chunks, 3u);
}

TEST(CApi, EmptyBuffer) {
  nz_options o = nz::test::options(NZ_BF16);
  std::vector<uint8_t> dst(nz_compress_bound(0, &o));
  size_t len = 0;
  ASSERT_EQ(nz_compress(nullptr, 0, &o, dst.data(), dst.size(), &len), NZ_OK);
  EXPECT_EQ(len, 64u);
  nz_info info;
  ASSERT_EQ(nz_inspect(dst.data(), len, &info), NZ_OK);
  EXPECT_EQ(info.element_count, 0u);
  EXPECT_EQ(nz_decompress(dst.data(), len, nullptr, 0, 1), NZ_OK);
}

TEST(CppApi, CompressDecompressInspect) {
  auto data = nz::test::gaussian_weights(NZ_BF16, 3000, 3);
  auto src = std::as_bytes(std::span(data));
  auto c = nz::compress(src, nz::Options::lossless(NZ_BF16));
  ASSERT_TRUE(c.ok()) << nz::error_string(c.status);
  nz::Info info{};
  ASSERT_EQ(nz::inspect(c.bytes, info), NZ_OK);
  EXPECT_EQ(info.element_count, 3000u);
  std::vector<std::byte> out;
  ASSERT_EQ(nz::decompress(c.bytes, out, 1), NZ_OK);
  ASSERT_EQ(out.size(), src.size());
  EXPECT_EQ(std::memcmp(out.data(), src.data(), src.size()), 0);
  EXPECT_EQ(nz::hash(src), nz_hash(data.data(), data.size()));
  std::vector<std::byte> exact(src.size());
  EXPECT_EQ(nz::decompress(c.bytes, std::span(exact), 1, NZ_FP16), NZ_ERR_DTYPE_MISMATCH);
  EXPECT_EQ(nz::decompress(c.bytes, std::span(exact), 1, NZ_BF16), NZ_OK);
  // A byte count that is not a whole number of elements.
  EXPECT_EQ(nz::compress(src.first(5), nz::Options::lossless(NZ_BF16)).status, NZ_ERR_INVALID_ARGUMENT);
  auto lossy = nz::compress(src, nz::Options::lossy(NZ_BF16, 3, 512));
  ASSERT_TRUE(lossy.ok());
  EXPECT_LT(lossy.bytes.size(), c.bytes.size());
}
