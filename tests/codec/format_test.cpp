#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "codec/format.h"
#include "codec/hash.h"
#include "test_util.h"

using namespace nz::codec;

namespace {

std::vector<uint8_t> sample_buffer(nz_dtype dtype = NZ_BF16, size_t n = 3000) {
  auto data = nz::test::gaussian_weights(dtype, n, 11);
  auto c = nz::test::compress(data.data(), n, nz::test::options(dtype, 1024));
  EXPECT_EQ(c.status, NZ_OK);
  return c.bytes;
}

// Rewrites the header checksum after an edit, so that only the edited
// field's own validation can reject the buffer.
void reseal(std::vector<uint8_t>& b) {
  Header h = read_header(b.data());
  h.header_checksum = header_checksum_of(b.data(), h.payload_offset());
  write_header(h, b.data());
}

}  // namespace

TEST(Format, HeaderLayoutMatchesTheSpec) {
  auto b = sample_buffer();
  uint32_t magic;
  std::memcpy(&magic, b.data(), 4);
  EXPECT_EQ(magic, 0x50495A4Eu);
  EXPECT_EQ(b[0], 'N');
  EXPECT_EQ(b[1], 'Z');
  EXPECT_EQ(b[2], 'I');
  EXPECT_EQ(b[3], 'P');
  Header h = read_header(b.data());
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.dtype, NZ_BF16);
  EXPECT_EQ(h.element_count, 3000u);
  EXPECT_EQ(h.chunk_elems, 1024u);
  EXPECT_EQ(h.chunk_count, 3u);
  EXPECT_EQ(h.kept_bits, 7);
  EXPECT_EQ(h.lanes, 32);
  EXPECT_EQ(h.prob_bits, 11);
  EXPECT_EQ(h.total_bytes, b.size());
  EXPECT_EQ(h.table_bytes % 8, 0u);
  // The header checksum is nzhash of [0, payload_offset) with the field zeroed.
  std::vector<uint8_t> prefix(b.begin(), b.begin() + static_cast<long>(h.payload_offset()));
  std::memset(prefix.data() + 48, 0, 8);
  EXPECT_EQ(nzhash(prefix.data(), prefix.size()), h.header_checksum);
}

TEST(Format, WriteReadHeaderRoundTrip) {
  Header h;
  h.dtype = 3;
  h.mode = 1;
  h.element_count = 123456789;
  h.chunk_elems = 1 << 16;
  h.kept_bits = 3;
  h.block_log2 = 9;
  h.prob_bits = 12;
  h.chunk_count = 1884;
  h.table_bytes = 48;
  h.payload_bytes = 999;
  h.total_bytes = 12345;
  h.header_checksum = 0x1234;
  uint8_t b[64];
  write_header(h, b);
  Header r = read_header(b);
  EXPECT_EQ(std::memcmp(&r, &h, sizeof(Header)), 0);
}

TEST(Format, ChunkTableOffsetsAreAlignedAndChained) {
  auto b = sample_buffer();
  ParsedBuffer p;
  ASSERT_EQ(parse_buffer(b.data(), b.size(), p), NZ_OK);
  uint64_t expect = 0;
  for (uint32_t c = 0; c < p.header.chunk_count; ++c) {
    ChunkEntry e = p.chunk_entry(c);
    EXPECT_EQ(e.offset, expect);
    EXPECT_EQ(e.offset % 16, 0u);
    expect = (e.offset + e.size + 15) / 16 * 16;
  }
  EXPECT_EQ(expect, p.header.payload_bytes);
}

TEST(Format, RejectsFieldsOutsideTheirRules) {
  const auto good = sample_buffer();
  struct Edit {
    const char* what;
    size_t offset;
    std::vector<uint8_t> bytes;
    nz_status expect;
  };
  const std::vector<Edit> edits = {
      {"version", 4, {2, 0}, NZ_ERR_BAD_VERSION},
      {"dtype 0", 6, {0}, NZ_ERR_CORRUPT_HEADER},
      {"dtype 4", 6, {4}, NZ_ERR_CORRUPT_HEADER},
      {"mode 2", 7, {2}, NZ_ERR_CORRUPT_HEADER},
      {"chunk_elems not pow2", 16, {0x01, 0x06, 0, 0}, NZ_ERR_CORRUPT_HEADER},
      {"chunk_elems too small", 16, {0x00, 0x02, 0, 0}, NZ_ERR_CORRUPT_HEADER},
      {"chunk_elems too big", 16, {0, 0, 0x80, 0}, NZ_ERR_CORRUPT_HEADER},
      {"kept_bits lossless", 20, {6}, NZ_ERR_CORRUPT_HEADER},
      {"block in lossless", 21, {4}, NZ_ERR_CORRUPT_HEADER},
      {"prob_bits 7", 22, {7}, NZ_ERR_CORRUPT_HEADER},
      {"prob_bits 16", 22, {16}, NZ_ERR_CORRUPT_HEADER},
      {"lanes", 23, {16}, NZ_ERR_CORRUPT_HEADER},
      {"chunk_count", 24, {4}, NZ_ERR_CORRUPT_HEADER},
      {"reserved", 56, {1}, NZ_ERR_CORRUPT_HEADER},
  };
  for (const auto& e : edits) {
    auto b = good;
    std::memcpy(b.data() + e.offset, e.bytes.data(), e.bytes.size());
    reseal(b);
    nz_info info;
    EXPECT_EQ(nz_inspect(b.data(), b.size(), &info), e.expect) << e.what;
  }
  auto b = good;
  b[0] ^= 1;
  nz_info info;
  EXPECT_EQ(nz_inspect(b.data(), b.size(), &info), NZ_ERR_BAD_MAGIC);
}

TEST(Format, LossyHeaderRules) {
  auto data = nz::test::gaussian_weights(NZ_BF16, 2048, 3);
  auto o = nz::test::options(NZ_BF16, 1024);
  o.mode = NZ_LOSSY;
  o.kept_bits = 3;
  o.block_size = 64;
  auto c = nz::test::compress(data.data(), 2048, o);
  ASSERT_EQ(c.status, NZ_OK);
  nz_info info;
  ASSERT_EQ(nz_inspect(c.bytes.data(), c.bytes.size(), &info), NZ_OK);
  EXPECT_EQ(info.block_size, 64u);
  auto b = c.bytes;
  b[20] = 7;  // K = M is not lossy
  reseal(b);
  EXPECT_EQ(nz_inspect(b.data(), b.size(), &info), NZ_ERR_CORRUPT_HEADER);
  b = c.bytes;
  b[21] = 11;  // block larger than the chunk
  reseal(b);
  EXPECT_EQ(nz_inspect(b.data(), b.size(), &info), NZ_ERR_CORRUPT_HEADER);
}

TEST(Format, FrequencyTableRules) {
  const auto good = sample_buffer();
  Header h = read_header(good.data());
  ASSERT_GT(h.table_bytes, 0u);
  nz_info info;
  // A frequency changed by one: the sum is no longer 2^P.
  auto b = good;
  b[64 + 32] ^= 1;
  reseal(b);
  EXPECT_EQ(nz_inspect(b.data(), b.size(), &info), NZ_ERR_CORRUPT_HEADER);
  // Non-zero padding at the end of the table.
  b = good;
  b[64 + h.table_bytes - 1] = 1;
  reseal(b);
  // (only padding if the table has any; either way it must be rejected)
  EXPECT_NE(nz_inspect(b.data(), b.size(), &info), NZ_OK);
}

TEST(Format, TotalBytesSmallerThanTheBufferIsFine) {
  auto b = sample_buffer();
  const size_t len = b.size();
  b.resize(len + 100, 0xEE);
  nz_info info;
  ASSERT_EQ(nz_inspect(b.data(), b.size(), &info), NZ_OK);
  EXPECT_EQ(info.compressed_bytes, len);
  std::vector<uint8_t> out(info.original_bytes);
  EXPECT_EQ(nz_decompress(b.data(), b.size(), out.data(), out.size(), 1), NZ_OK);
}

TEST(Format, TruncationAtEveryLength) {
  auto b = sample_buffer(NZ_FP16, 1500);
  std::vector<uint8_t> out(4000);
  for (size_t len = 0; len < b.size(); ++len) {
    std::vector<uint8_t> cut(b.begin(), b.begin() + static_cast<long>(len));
    nz_info info;
    nz_status st = nz_inspect(cut.data(), cut.size(), &info);
    EXPECT_NE(st, NZ_OK) << len;
    EXPECT_NE(nz_decompress(cut.data(), cut.size(), out.data(), out.size(), 1), NZ_OK) << len;
  }
}
