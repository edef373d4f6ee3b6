#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "codec/decoder.h"
#include "codec/dtype.h"
#include "test_util.h"
#include "weights_file.h"

using nz::test::compress;
using nz::test::options;

namespace {

void expect_round_trip(const std::vector<uint8_t>& data, nz_dtype dtype, uint32_t chunk_elems = 1024,
                       uint32_t threads = 1) {
  const size_t n = data.size() / nz_dtype_size(dtype);
  const nz_options o = options(dtype, chunk_elems, threads);
  auto c = compress(data.data(), n, o);
  ASSERT_EQ(c.status, NZ_OK);
  EXPECT_LE(c.bytes.size(), nz_compress_bound(n, &o));
  // Every rANS implementation must produce the same bytes.
  for (auto impl : {nz::codec::CpuLevel::kScalar, nz::codec::CpuLevel::kAvx2, nz::codec::CpuLevel::kAvx512}) {
    if (!nz::codec::cpu_level_supported(impl)) continue;
    std::vector<uint8_t> out(data.size() + 1, 0xCD);
    ASSERT_EQ(nz::codec::decompress(c.bytes.data(), c.bytes.size(), out.data(), out.size(), threads, impl), NZ_OK);
    EXPECT_TRUE(std::equal(data.begin(), data.end(), out.begin())) << "impl " << static_cast<int>(impl);
    EXPECT_EQ(out.back(), 0xCD) << "wrote past the output";
  }
}

std::vector<uint8_t> as_bytes(const std::vector<uint16_t>& v) {
  std::vector<uint8_t> b(v.size() * 2);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace

class RoundTrip : public ::testing::TestWithParam<nz_dtype> {};

TEST_P(RoundTrip, SizesAroundLanesAndChunks) {
  const nz_dtype dtype = GetParam();
  for (size_t n : {0u, 1u, 31u, 32u, 33u, 1023u, 1024u, 1025u, 4096u + 77u, 10000u}) {
    expect_round_trip(nz::test::gaussian_weights(dtype, n, n), dtype);
  }
}

TEST_P(RoundTrip, RandomBytesThatAreNotFloats) {
  const nz_dtype dtype = GetParam();
  for (size_t n : {1u, 100u, 5000u}) expect_round_trip(nz::test::random_bytes(n * nz_dtype_size(dtype), n), dtype);
}

TEST_P(RoundTrip, ConstantData) {
  const nz_dtype dtype = GetParam();
  std::vector<uint8_t> zeros(3000 * nz_dtype_size(dtype), 0);
  expect_round_trip(zeros, dtype);
  std::vector<uint8_t> ones(3000 * nz_dtype_size(dtype), 0x3C);
  expect_round_trip(ones, dtype);
}

TEST_P(RoundTrip, LargerChunksAndPrecisions) {
  const nz_dtype dtype = GetParam();
  auto data = nz::test::gaussian_weights(dtype, 70000, 1);
  expect_round_trip(data, dtype, 1 << 16);
  for (uint32_t p : {8u, 12u, 13u, 15u}) {
    auto o = options(dtype, 2048);
    o.prob_bits = p;
    auto c = compress(data.data(), 70000, o);
    ASSERT_EQ(c.status, NZ_OK);
    std::vector<uint8_t> out;
    ASSERT_EQ(nz::test::decompress(c.bytes, out), NZ_OK);
    EXPECT_EQ(out, data) << "P=" << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtype, RoundTrip, ::testing::Values(NZ_BF16, NZ_FP16, NZ_FP32),
                         [](const auto& info) {
                           return std::string(info.param == NZ_BF16 ? "bf16" : info.param == NZ_FP16 ? "fp16" : "fp32");
                         });

TEST(RoundTrip, EveryBf16AndFp16BitPattern) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  expect_round_trip(as_bytes(all), NZ_BF16);
  expect_round_trip(as_bytes(all), NZ_FP16);
  // Also in a shuffled order, so that rANS chunks see a mixed alphabet.
  std::vector<uint16_t> mixed(65536);
  for (uint32_t i = 0; i < 65536; ++i) mixed[i] = static_cast<uint16_t>(i * 40503u);
  expect_round_trip(as_bytes(mixed), NZ_BF16);
  expect_round_trip(as_bytes(mixed), NZ_FP16);
}

TEST(RoundTrip, Fp32SpecialValues) {
  std::vector<uint32_t> v = {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00001u,
                             0x7F800001u, 0x7FBFFFFFu, 0x00000001u, 0x807FFFFFu, 0x00400000u, 0x7F7FFFFFu,
                             0xFF7FFFFFu, 0x3F800000u};
  for (uint32_t i = 0; i < 2000; ++i) v.push_back(0x7F800000u | (i * 2654435761u & 0x7FFFFF) | (i << 31));
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  expect_round_trip(b, NZ_FP32);
}

TEST(RoundTrip, RealBf16WeightsNearTheEntropyBound) {
  auto data = nz::test::safetensors_payload(nz::test::weights_dir() + "/gpt-neo-125m-attn-bf16.safetensors");
  ASSERT_FALSE(data.empty()) << "missing ../shared/weights";
  const size_t n = data.size() / 2;
  data.resize(n * 2);
  expect_round_trip(data, NZ_BF16, 1 << 16, 2);
  auto c = compress(data.data(), n, options(NZ_BF16, 0, 2));
  ASSERT_EQ(c.status, NZ_OK);
  // Bound: exponent entropy plus 8 raw bits per element.
  std::vector<double> counts(256, 0);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = data[2 * i] | (uint32_t{data[2 * i + 1]} << 8);
    counts[(bits >> 7) & 0xFF] += 1;
  }
  double bits = 8.0 * static_cast<double>(n);
  for (double c2 : counts) {
    if (c2 > 0) bits -= c2 * std::log2(c2 / static_cast<double>(n));
  }
  const double bound = bits / 8 / static_cast<double>(data.size());
  const double ratio = static_cast<double>(c.bytes.size()) / static_cast<double>(data.size());
  EXPECT_LE(ratio, bound * 1.005) << "ratio " << ratio << " bound " << bound;
  EXPECT_LT(ratio, 0.68);
}

TEST(RoundTrip, RealFp32Weights) {
  auto data = nz::test::safetensors_payload(nz::test::weights_dir() + "/gpt2-small-attn-f32.safetensors");
  ASSERT_FALSE(data.empty()) << "missing ../shared/weights";
  data.resize(data.size() / 4 * 4);
  expect_round_trip(data, NZ_FP32, 1 << 16, 2);
}
