// The fused fp16/fp32 decoders (rans_decode_fp16_fp32_avx2.cpp and
// rans_decode_fp16_fp32_avx512.cpp) against the scalar reference: weight-like data salted with every special
// value (and, for fp16, every bit pattern), sizes around the 32-lane step,
// several chunks (so pairs and a lone last chunk), every precision P 8..15.
// Outputs must equal the source and each other; the fused job itself must
// cover the whole steps and report the hash of what it wrote.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "codec/decoder.h"
#include "codec/format.h"
#include "codec/freq_table.h"
#include "codec/hash.h"
#include "codec/rans.h"
#include "test_util.h"

using namespace nz::codec;

namespace {

const char* name_of(nz_dtype d) { return d == NZ_FP16 ? "fp16" : "fp32"; }

struct Decoded {
  nz_status status;
  std::vector<uint8_t> bytes;
};

Decoded decode_with(const std::vector<uint8_t>& comp, size_t out_bytes, CpuLevel impl, uint32_t threads) {
  Decoded d{NZ_OK, std::vector<uint8_t>(out_bytes + 1, 0xCD)};
  d.status = decompress(comp.data(), comp.size(), d.bytes.data(), d.bytes.size(), threads, impl);
  return d;
}

void expect_same_as_scalar(const std::vector<uint8_t>& data, nz_dtype dtype, uint32_t chunk_elems, uint32_t p,
                           bool expect_coded, CpuLevel level) {
  const size_t n = data.size() / nz_dtype_size(dtype);
  auto o = nz::test::options(dtype, chunk_elems);
  o.prob_bits = p;
  auto c = nz::test::compress(data.data(), n, o);
  ASSERT_EQ(c.status, NZ_OK);
  if (expect_coded) {
    nz_info info{};
    ASSERT_EQ(nz_inspect(c.bytes.data(), c.bytes.size(), &info), NZ_OK);
    ASSERT_GT(info.coded_chunks, 0u) << "no rANS chunk: the test would not reach the fused decoder";
  }
  const Decoded ref = decode_with(c.bytes, data.size(), CpuLevel::kScalar, 1);
  ASSERT_EQ(ref.status, NZ_OK);
  ASSERT_TRUE(std::equal(data.begin(), data.end(), ref.bytes.begin()));
  for (uint32_t threads : {1u, 2u}) {
    const Decoded got = decode_with(c.bytes, data.size(), level, threads);
    ASSERT_EQ(got.status, NZ_OK) << name_of(dtype) << " n " << n << " P " << p << " threads " << threads;
    EXPECT_EQ(got.bytes, ref.bytes) << name_of(dtype) << " n " << n << " P " << p << " threads " << threads;
  }
}

// (dtype, level): AVX2, or AVX-512 with VBMI (the level's fused decoder).
class FusedWideDecode : public ::testing::TestWithParam<std::tuple<nz_dtype, CpuLevel>> {
 protected:
  void SetUp() override {
    if (level() == CpuLevel::kAvx512 && !cpu_has_avx512_vbmi()) GTEST_SKIP() << "CPU lacks AVX-512 VBMI/VBMI2";
    if (!cpu_level_supported(level())) GTEST_SKIP() << "CPU lacks " << cpu_level_name(level());
  }
  static nz_dtype dtype() { return std::get<0>(GetParam()); }
  static CpuLevel level() { return std::get<1>(GetParam()); }
};

TEST_P(FusedWideDecode, OddTailsAndChunkCounts) {
  // Around a step, a chunk, and chunk counts that leave a lone last chunk.
  for (size_t n : {1u, 31u, 32u, 33u, 63u, 95u, 1023u, 1024u, 1025u, 2048u + 31u, 3072u + 1u, 5u * 1024 + 17u}) {
    expect_same_as_scalar(nz::test::salted_weights(dtype(), n, n), dtype(), 1024, 11, n >= 1024, level());
  }
}

TEST_P(FusedWideDecode, EveryPrecision) {
  const auto data = nz::test::salted_weights(dtype(), 4 * 4096 + 45, 5);
  for (uint32_t p = 8; p <= 15; ++p) expect_same_as_scalar(data, dtype(), 4096, p, true, level());
}

TEST_P(FusedWideDecode, SpecialValuesDense) {
  // Half the elements special: the alphabet is wide and long runs of the
  // extreme exponents occur.
  expect_same_as_scalar(nz::test::salted_weights(dtype(), 9000, 77, 2), dtype(), 2048, 11, false, level());
  expect_same_as_scalar(nz::test::salted_weights(dtype(), 9000, 78, 2), dtype(), 2048, 8, false, level());
}

TEST_P(FusedWideDecode, LargeChunks) {
  expect_same_as_scalar(nz::test::salted_weights(dtype(), (1u << 17) + 3, 9, 50), dtype(), 1u << 16, 11, true, level());
}

// The fused job on its own: it must decode every whole step of a chunk whose
// stream has enough words left, write exactly the source elements and report
// their hash terms, and leave the decoder where the generic path resumes.
TEST_P(FusedWideDecode, JobCoversWholeStepsAndHashesThem) {
  const nz_dtype dtype = this->dtype();
  const size_t n = 4096 + 21;
  const auto data = nz::test::salted_weights(dtype, n, 3, 40);
  // Precisions with a table for the level's fused decoder (above them it does nothing).
  const uint32_t max_p =
      level() == CpuLevel::kAvx2 ? DecodeTable::kAvx2MaxProbBits : DecodeTable::kPackedMaxProbBits;
  for (uint32_t p = 8; p <= max_p; ++p) {
    auto o = nz::test::options(dtype, 8192);
    o.prob_bits = p;
    auto c = nz::test::compress(data.data(), n, o);
    ASSERT_EQ(c.status, NZ_OK);
    ParsedBuffer buf;
    ASSERT_EQ(parse_buffer(c.bytes.data(), c.bytes.size(), buf), NZ_OK);
    ASSERT_EQ(buf.chunk_entry(0).kind, static_cast<uint32_t>(ChunkKind::kRans));
    DecodeTable table;
    build_decode_table(buf.table, table);
    const ChunkLayout cl = buf.chunk_layout(0);
    const ChunkEntry e = buf.chunk_entry(0);
    const uint8_t* payload = buf.base + buf.payload_offset + e.offset;
    const uint32_t bytes = nz_dtype_size(dtype);
    // The AVX2 decoder has no pair form.
    for (bool pair : {false, level() == CpuLevel::kAvx512}) {
      RansDecoder dec[2]{};
      FusedJob job[2];
      std::vector<uint8_t> out[2];
      for (int i = 0; i < 2; ++i) {
        std::memcpy(dec[i].x, payload, kStateBytes);
        dec[i].words = payload + kStateBytes + cl.raw_bytes;
        dec[i].word_count = (e.size - cl.rans_fixed_size()) / 2;
        out[i].assign(n * bytes, 0xCD);
        job[i].dec = &dec[i];
        job[i].raw = payload + kStateBytes;
        job[i].end = payload + e.size;
        job[i].dst = out[i].data();
        job[i].count = n;
      }
      if (pair) {
        rans_decode_wide_avx512_pair(table, dtype, job[0], job[1]);
      } else if (level() == CpuLevel::kAvx512) {
        rans_decode_wide_avx512(table, dtype, job[0]);
      } else {
        FusedParams lossless;
        lossless.kept_bits = dtype_layout(dtype).mantissa_bits;
        rans_decode_wide_avx2(table, dtype, lossless, job[0]);
      }
      for (int i = 0; i < (pair ? 2 : 1); ++i) {
        // A step needs 32 words in the stream: only the last few steps may be left.
        EXPECT_GE(job[i].done + 32 * 40, n / 32 * 32) << "P " << p;
        EXPECT_EQ(job[i].done % 32, 0u);
        EXPECT_EQ(job[i].final_done, job[i].done);
        EXPECT_TRUE(std::equal(data.begin(), data.begin() + job[i].done * bytes, out[i].begin())) << "P " << p;
        EXPECT_EQ(out[i][job[i].done * bytes], 0xCD) << "wrote past what it reports";
        EXPECT_EQ(job[i].hash_sum, hash_add_bytes(data.data(), job[i].done * bytes, 0)) << "P " << p;
        // The rest through the scalar decoder must end the stream exactly.
        std::vector<uint8_t> rest(n - job[i].done);
        ASSERT_TRUE(rans_decode_scalar(dec[i], table, rest.data(), rest.size()));
        EXPECT_EQ(dec[i].pos, dec[i].word_count);
        for (uint32_t lane = 0; lane < kLanes; ++lane) EXPECT_EQ(dec[i].x[lane], kRansLow);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DtypeLevel, FusedWideDecode,
                         ::testing::Combine(::testing::Values(NZ_FP16, NZ_FP32),
                                            ::testing::Values(CpuLevel::kAvx2, CpuLevel::kAvx512)),
                         [](const auto& info) {
                           return std::string(name_of(std::get<0>(info.param))) + "_" +
                                  cpu_level_name(std::get<1>(info.param));
                         });

}  // namespace
