// Every instruction-set level this CPU has (scalar, AVX2, AVX-512) must give
// the same bytes: the compressed buffer of every dtype and mode (compressed
// at each level), the decoded output of it (decoded at each level), and
// nzhash. Inputs: weights, weights salted with special values and every
// 16-bit pattern, random bytes (packed chunks); precisions on both sides of
// the vector decoders' table limits; lossy with every kind of block.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "codec/cpu_level.h"
#include "codec/decoder.h"
#include "codec/dtype.h"
#include "codec/hash.h"
#include "test_util.h"

using namespace nz::codec;

namespace {

std::vector<CpuLevel> supported_levels() {
  std::vector<CpuLevel> v;
  for (CpuLevel l : kAllCpuLevels) {
    if (cpu_level_supported(l)) v.push_back(l);
  }
  return v;
}

// Restores the level the process had.
struct LevelGuard {
  CpuLevel saved = cpu_level();
  ~LevelGuard() { set_cpu_level(saved); }
};

struct Input {
  std::string name;
  nz_dtype dtype;
  std::vector<uint8_t> bytes;
};

std::vector<Input> inputs(nz_dtype dtype) {
  // Three chunks of 4096 and a tail that is not a whole step.
  const size_t n = 3 * 4096 + 77;
  const size_t size = nz_dtype_size(dtype);
  // One value only: empty rANS streams, whole steps up to the end of each
  // payload (the vector decoders must not read past it; ASan checks).
  std::vector<uint8_t> constant(2 * 4096 * size, 0);
  for (size_t i = 0; i < constant.size(); i += size) constant[i + size - 1] = 0x3C;
  return {{"weights", dtype, nz::test::gaussian_weights(dtype, n, 11)},
          {"salted", dtype, nz::test::salted_weights(dtype, n, 12, 5)},
          {"random", dtype, nz::test::random_bytes(n * size, 13)},
          {"constant", dtype, constant}};
}

struct Config {
  nz_mode mode = NZ_LOSSLESS;
  uint32_t kept_bits = 0;
  uint32_t block = 0;
  uint32_t prob_bits = 11;
};

std::string describe(const Input& in, const Config& c, CpuLevel level) {
  return in.name + " dtype " + std::to_string(in.dtype) + (c.mode == NZ_LOSSY ? " lossy K " : " lossless") +
         (c.mode == NZ_LOSSY ? std::to_string(c.kept_bits) + " block " + std::to_string(c.block) : "") + " P " +
         std::to_string(c.prob_bits) + " at " + cpu_level_name(level);
}

void expect_levels_agree(const Input& in, const Config& c) {
  const auto levels = supported_levels();
  const size_t n = in.bytes.size() / nz_dtype_size(in.dtype);
  auto o = nz::test::options(in.dtype, 4096);
  o.mode = c.mode;
  o.kept_bits = c.kept_bits;
  o.block_size = c.block;
  o.prob_bits = c.prob_bits;
  LevelGuard guard;
  nz::test::Compressed reference;
  for (CpuLevel level : levels) {
    set_cpu_level(level);
    const auto comp = nz::test::compress(in.bytes.data(), n, o);
    if (level == levels.front()) {
      reference = comp;
      continue;
    }
    ASSERT_EQ(comp.status, reference.status) << describe(in, c, level);
    ASSERT_EQ(comp.bytes, reference.bytes) << "compressed bytes differ: " << describe(in, c, level);
  }
  if (reference.status != NZ_OK) return;  // lossy K = 0 with a NaN: refused at every level
  // In an allocation of exactly its size, so that ASan sees any read past it
  // (a vector's spare capacity would hide one).
  const std::unique_ptr<uint8_t[]> exact(new uint8_t[reference.bytes.size()]);
  std::memcpy(exact.get(), reference.bytes.data(), reference.bytes.size());
  std::vector<uint8_t> first;
  for (CpuLevel level : levels) {
    std::vector<uint8_t> out(in.bytes.size() + 1, 0xCD);
    ASSERT_EQ(decompress(exact.get(), reference.bytes.size(), out.data(), out.size(), 1, level), NZ_OK)
        << describe(in, c, level);
    EXPECT_EQ(out.back(), 0xCD) << "wrote past the output: " << describe(in, c, level);
    out.pop_back();
    if (c.mode == NZ_LOSSLESS) {
      EXPECT_EQ(out, in.bytes) << describe(in, c, level);
    }
    if (first.empty()) {
      first = out;
    } else {
      EXPECT_EQ(out, first) << "decoded bytes differ: " << describe(in, c, level);
    }
  }
}

class Levels : public ::testing::TestWithParam<nz_dtype> {
 protected:
  void SetUp() override {
    if (supported_levels().size() < 2) GTEST_SKIP() << "this CPU has only the scalar level";
  }
};

}  // namespace

TEST_P(Levels, LosslessAtEveryPrecision) {
  for (const Input& in : inputs(GetParam())) {
    for (uint32_t p : {8u, 11u, 12u, 15u}) expect_levels_agree(in, Config{NZ_LOSSLESS, 0, 0, p});
  }
}

TEST_P(Levels, LossyEveryKindOfBlock) {
  const uint32_t m = dtype_layout(GetParam()).mantissa_bits;
  for (const Input& in : inputs(GetParam())) {
    if (in.name == "random") continue;  // NaN everywhere: lossy is for floats
    for (uint32_t k : {0u, 1u, 3u, m - 1}) {
      for (uint32_t block : {0u, 8u, 32u, 512u}) expect_levels_agree(in, Config{NZ_LOSSY, k, block, 11});
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtype, Levels, ::testing::Values(NZ_BF16, NZ_FP16, NZ_FP32), [](const auto& info) {
  return std::string(info.param == NZ_BF16 ? "bf16" : info.param == NZ_FP16 ? "fp16" : "fp32");
});

TEST(Levels, HashAgreesForEveryLengthAndStart) {
  const auto data = nz::test::random_bytes(4096 + 13, 21);
  for (size_t len : {0u, 3u, 4u, 31u, 255u, 256u, 257u, 4096u, 4109u}) {
    for (uint64_t first_word : {uint64_t{0}, uint64_t{1}, uint64_t{7}, (uint64_t{1} << 33) + 5}) {
      const uint64_t reference = hash_add_bytes(data.data(), len, first_word, CpuLevel::kScalar);
      for (CpuLevel level : supported_levels()) {
        EXPECT_EQ(hash_add_bytes(data.data(), len, first_word, level), reference)
            << "len " << len << " first word " << first_word << " at " << cpu_level_name(level);
      }
    }
  }
}
