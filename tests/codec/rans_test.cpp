#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "codec/freq_table.h"
#include "codec/rans.h"

using namespace nz::codec;

namespace {

FreqTable table_for(const std::vector<uint8_t>& symbols, uint32_t alphabet, uint32_t prob_bits) {
  std::array<uint64_t, 256> counts{};
  for (auto s : symbols) ++counts[s];
  return normalize_frequencies(counts, alphabet, prob_bits);
}

std::vector<uint8_t> skewed_symbols(size_t n, uint32_t alphabet, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::geometric_distribution<int> g(0.35);
  std::vector<uint8_t> s(n);
  for (auto& x : s) x = static_cast<uint8_t>((118 + g(rng)) % alphabet);
  return s;
}

// Encodes then decodes with `impl`; returns false if any check fails.
void round_trip(const std::vector<uint8_t>& symbols, const FreqTable& table, CpuLevel impl) {
  std::vector<uint16_t> words(symbols.size() + 64);
  uint32_t states[kLanes];
  uint64_t count = 0;
  ASSERT_TRUE(rans_encode(cpu_level(), symbols.data(), symbols.size(), table, states, words.data(), words.size(), &count));
  DecodeTable dt;
  build_decode_table(table, dt);
  RansDecoder dec{};
  std::memcpy(dec.x, states, sizeof(states));
  dec.words = reinterpret_cast<const uint8_t*>(words.data() + (words.size() - count));
  dec.word_count = count;
  std::vector<uint8_t> out(symbols.size());
  // In slices, as the chunk decoder does.
  for (size_t first = 0; first < symbols.size(); first += 4096) {
    size_t n = std::min<size_t>(4096, symbols.size() - first);
    ASSERT_TRUE(rans_decode(impl, dec, dt, out.data() + first, n));
  }
  EXPECT_EQ(out, symbols);
  EXPECT_EQ(dec.pos, count);
  for (uint32_t l = 0; l < kLanes; ++l) EXPECT_EQ(dec.x[l], kRansLow);
}

}  // namespace

TEST(FreqTable, SumsToPowerOfTwoAndKeepsEverySymbol) {
  std::array<uint64_t, 256> counts{};
  counts[0] = 1;
  counts[5] = 1000000;
  counts[200] = 3;
  for (uint32_t p = 8; p <= 15; ++p) {
    FreqTable t = normalize_frequencies(counts, 256, p);
    uint64_t sum = 0;
    for (uint32_t s = 0; s < 256; ++s) {
      sum += t.freq[s];
      EXPECT_EQ(t.freq[s] != 0, counts[s] != 0);
    }
    EXPECT_EQ(sum, 1u << p);
  }
}

TEST(FreqTable, AllSymbolsPresentAtLowestPrecision) {
  std::array<uint64_t, 256> counts{};
  for (auto& c : counts) c = 1;
  counts[7] = 1u << 20;
  FreqTable t = normalize_frequencies(counts, 256, 8);
  for (uint32_t s = 0; s < 256; ++s) EXPECT_EQ(t.freq[s], 1u);
}

class RansRoundTrip : public ::testing::TestWithParam<CpuLevel> {};

TEST_P(RansRoundTrip, SizesAroundTheLaneCount) {
  if (!cpu_level_supported(GetParam())) GTEST_SKIP() << "CPU lacks this instruction set";
  for (size_t n : {1u, 31u, 32u, 33u, 64u, 4095u, 4096u, 4097u, 20000u}) {
    auto s = skewed_symbols(n, 256, n);
    round_trip(s, table_for(s, 256, 11), GetParam());
  }
}

TEST_P(RansRoundTrip, EveryPrecision) {
  if (!cpu_level_supported(GetParam())) GTEST_SKIP() << "CPU lacks this instruction set";
  auto s = skewed_symbols(10000, 32, 9);
  for (uint32_t p = 8; p <= 15; ++p) round_trip(s, table_for(s, 32, p), GetParam());
}

TEST_P(RansRoundTrip, SingleSymbolAlphabet) {
  if (!cpu_level_supported(GetParam())) GTEST_SKIP() << "CPU lacks this instruction set";
  std::vector<uint8_t> s(5000, 42);
  round_trip(s, table_for(s, 256, 11), GetParam());
}

TEST_P(RansRoundTrip, UniformSymbols) {
  if (!cpu_level_supported(GetParam())) GTEST_SKIP() << "CPU lacks this instruction set";
  std::mt19937 rng(4);
  std::vector<uint8_t> s(8192);
  for (auto& x : s) x = static_cast<uint8_t>(rng());
  round_trip(s, table_for(s, 256, 11), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Impl, RansRoundTrip,
                         ::testing::Values(CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512),
                         [](const auto& info) {
                           switch (info.param) {
                             case CpuLevel::kScalar: return std::string("scalar");
                             case CpuLevel::kAvx2: return std::string("avx2");
                             default: return std::string("avx512");
                           }
                         });

TEST(Rans, EncoderReportsOverflowOfTheWordBudget) {
  std::mt19937 rng(4);
  std::vector<uint8_t> s(4096);
  for (auto& x : s) x = static_cast<uint8_t>(rng());
  FreqTable t = table_for(s, 256, 11);
  std::vector<uint16_t> words(100);
  uint32_t states[kLanes];
  uint64_t count = 0;
  EXPECT_FALSE(rans_encode(cpu_level(), s.data(), s.size(), t, states, words.data(), words.size(), &count));
}

TEST(Rans, DecoderStopsAtTheEndOfTheStream) {
  auto s = skewed_symbols(4096, 256, 3);
  FreqTable t = table_for(s, 256, 11);
  std::vector<uint16_t> words(s.size());
  uint32_t states[kLanes];
  uint64_t count = 0;
  ASSERT_TRUE(rans_encode(cpu_level(), s.data(), s.size(), t, states, words.data(), words.size(), &count));
  DecodeTable dt;
  build_decode_table(t, dt);
  for (CpuLevel impl : {CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512}) {
    if (!cpu_level_supported(impl)) continue;
    RansDecoder dec{};
    std::memcpy(dec.x, states, sizeof(states));
    dec.words = reinterpret_cast<const uint8_t*>(words.data() + (words.size() - count));
    dec.word_count = count / 2;  // half the stream is missing
    std::vector<uint8_t> out(s.size());
    EXPECT_FALSE(rans_decode(impl, dec, dt, out.data(), out.size()));
    EXPECT_LE(dec.pos, dec.word_count);
  }
}

// The vector encoders must produce exactly the scalar encoder's stream and
// states (same algorithm; their division must never be off by one).
class RansVectorEncoder : public ::testing::TestWithParam<CpuLevel> {};

TEST_P(RansVectorEncoder, MatchesScalar) {
  const CpuLevel level = GetParam();
  if (!cpu_level_supported(level)) GTEST_SKIP() << "CPU lacks " << cpu_level_name(level);
  if (level == CpuLevel::kAvx512 && !cpu_has_avx512_vbmi()) GTEST_SKIP() << "CPU lacks AVX-512 VBMI2";
  struct Case {
    std::vector<uint8_t> symbols;
    uint32_t alphabet;
  };
  std::vector<Case> cases;
  for (size_t n : {1u, 31u, 32u, 33u, 4096u, 4097u, 65536u}) cases.push_back({skewed_symbols(n, 256, n + 7), 256});
  std::mt19937 rng(11);
  std::vector<uint8_t> uniform(20000);
  for (auto& x : uniform) x = static_cast<uint8_t>(rng());
  cases.push_back({uniform, 256});
  cases.push_back({std::vector<uint8_t>(3000, 42), 256});
  // One dominant symbol next to rare ones: frequencies 1 and close to 2^P.
  std::vector<uint8_t> dominant(50000, 5);
  for (size_t i = 0; i < dominant.size(); i += 997) dominant[i] = static_cast<uint8_t>(i % 31);
  cases.push_back({dominant, 32});
  for (const auto& c : cases) {
    for (uint32_t p = 8; p <= 15; ++p) {
      FreqTable t = table_for(c.symbols, c.alphabet, p);
      const size_t cap = c.symbols.size() + 64;
      std::vector<uint16_t> ws(cap), wv(cap);
      uint32_t ss[kLanes], sv[kLanes];
      uint64_t ns = 0, nv = 0;
      ASSERT_TRUE(rans_encode_scalar(c.symbols.data(), c.symbols.size(), t, ss, ws.data(), cap, &ns));
      ASSERT_TRUE(rans_encode(level, c.symbols.data(), c.symbols.size(), t, sv, wv.data(), cap, &nv));
      ASSERT_EQ(ns, nv) << "n " << c.symbols.size() << " p " << p;
      EXPECT_TRUE(std::equal(ws.end() - static_cast<std::ptrdiff_t>(ns), ws.end(), wv.end() - static_cast<std::ptrdiff_t>(nv)));
      EXPECT_EQ(0, std::memcmp(ss, sv, sizeof(ss)));
      // An exact budget (the last steps then go through the scalar tail) still
      // gives the same stream; one word short fails in both.
      std::vector<uint16_t> exact(ns + 1, 0xABCD);
      ASSERT_TRUE(rans_encode(level, c.symbols.data(), c.symbols.size(), t, sv, exact.data() + 1, ns, &nv));
      EXPECT_EQ(nv, ns);
      EXPECT_TRUE(std::equal(exact.begin() + 1, exact.end(), ws.end() - static_cast<std::ptrdiff_t>(ns)));
      EXPECT_EQ(exact[0], 0xABCD) << "wrote below the buffer";
      if (ns > 0) {
        EXPECT_FALSE(rans_encode(level, c.symbols.data(), c.symbols.size(), t, sv, wv.data(), ns - 1, &nv));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Level, RansVectorEncoder, ::testing::Values(CpuLevel::kAvx2, CpuLevel::kAvx512),
                         [](const auto& info) { return std::string(cpu_level_name(info.param)); });
