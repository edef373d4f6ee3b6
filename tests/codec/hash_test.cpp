#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "codec/hash.h"
#include "neuzip/neuzip.h"
#include "test_util.h"

using nz::codec::mix64;

// Straight from docs/FORMAT.md section 5, byte by byte.
static uint64_t reference_hash(const uint8_t* p, size_t len) {
  uint64_t h = mix64(len ^ 0x9E3779B97F4A7C15ull);
  for (size_t j = 0; j * 4 < len; ++j) {
    uint32_t w = 0;
    for (size_t b = 0; b < 4 && j * 4 + b < len; ++b) w |= uint32_t{p[j * 4 + b]} << (8 * b);
    h += mix64((uint64_t{j} << 32) | w);
  }
  return h;
}

TEST(Hash, MatchesReferenceForAllSmallLengths) {
  auto data = nz::test::random_bytes(300, 1);
  for (size_t len = 0; len <= data.size(); ++len) {
    EXPECT_EQ(nz_hash(data.data(), len), reference_hash(data.data(), len)) << len;
  }
}

TEST(Hash, Mix64Basics) {
  // Worked by hand from the definition: 0 is a fixed point, 1 is not.
  EXPECT_EQ(mix64(0), 0u);
  EXPECT_NE(mix64(1), 1u);
  EXPECT_NE(mix64(1), mix64(2));
}

TEST(Hash, PiecewiseEqualsWhole) {
  auto data = nz::test::random_bytes(4096, 2);
  uint64_t whole = nz::codec::nzhash(data.data(), data.size());
  uint64_t pieces = nz::codec::hash_seed(data.size()) + nz::codec::hash_add_bytes(data.data(), 1000, 0) +
                    nz::codec::hash_add_bytes(data.data() + 1000, 3096, 250);
  EXPECT_EQ(whole, pieces);
}

TEST(Hash, EverySingleByteChangeChangesTheHash) {
  auto data = nz::test::random_bytes(257, 3);
  uint64_t h = nz_hash(data.data(), data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    for (uint8_t x : {0x01, 0x80, 0xFF}) {
      data[i] ^= x;
      EXPECT_NE(nz_hash(data.data(), data.size()), h);
      data[i] ^= x;
    }
  }
}

TEST(Hash, LengthMatters) {
  std::vector<uint8_t> zeros(8, 0);
  EXPECT_NE(nz_hash(zeros.data(), 7), nz_hash(zeros.data(), 8));
  EXPECT_NE(nz_hash(zeros.data(), 0), nz_hash(zeros.data(), 1));
}
