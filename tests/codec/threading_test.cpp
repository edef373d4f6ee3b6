#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "codec/threading.h"
#include "test_util.h"

TEST(Threading, EffectiveThreads) {
  EXPECT_EQ(nz::codec::effective_threads(4, 2), 2u);
  EXPECT_EQ(nz::codec::effective_threads(1, 100), 1u);
  EXPECT_EQ(nz::codec::effective_threads(3, 0), 1u);
  EXPECT_GE(nz::codec::effective_threads(0, 1000), 1u);
}

TEST(Threading, ParallelForVisitsEveryIndexOnce) {
  std::vector<std::atomic<int>> seen(1000);
  nz::codec::parallel_for(4, seen.size(), [&](uint64_t i) {
    seen[i].fetch_add(1);
    return true;
  });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

TEST(Threading, SameBytesForEveryThreadCount) {
  auto data = nz::test::gaussian_weights(NZ_BF16, 20000, 6);
  auto one = nz::test::compress(data.data(), 20000, nz::test::options(NZ_BF16, 1024, 1));
  ASSERT_EQ(one.status, NZ_OK);
  for (uint32_t t : {0u, 2u, 3u, 8u}) {
    auto many = nz::test::compress(data.data(), 20000, nz::test::options(NZ_BF16, 1024, t));
    ASSERT_EQ(many.status, NZ_OK);
    EXPECT_EQ(many.bytes, one.bytes) << t << " threads";
    std::vector<uint8_t> out;
    ASSERT_EQ(nz::test::decompress(one.bytes, out, t), NZ_OK);
    EXPECT_EQ(out, data);
  }
}

TEST(Threading, ConcurrentCallsShareNothing) {
  auto data = nz::test::gaussian_weights(NZ_FP16, 9000, 7);
  auto ref = nz::test::compress(data.data(), 9000, nz::test::options(NZ_FP16, 1024, 1));
  ASSERT_EQ(ref.status, NZ_OK);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < 5; ++r) {
        auto c = nz::test::compress(data.data(), 9000, nz::test::options(NZ_FP16, 1024, 2));
        std::vector<uint8_t> out;
        if (c.bytes != ref.bytes || nz::test::decompress(c.bytes, out, 2) != NZ_OK || out != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Threading, ErrorIsTheLowestBadChunk) {
  auto data = nz::test::gaussian_weights(NZ_BF16, 8192, 6);
  auto c = nz::test::compress(data.data(), 8192, nz::test::options(NZ_BF16, 1024, 1));
  ASSERT_EQ(c.status, NZ_OK);
  // Break the raw bits of the last chunk (checksum) — then the first chunk's padding is fine.
  auto b = c.bytes;
  b[b.size() - 40] ^= 0x10;
  std::vector<uint8_t> out(data.size());
  for (uint32_t t : {1u, 4u}) {
    EXPECT_NE(nz_decompress(b.data(), b.size(), out.data(), out.size(), t), NZ_OK);
  }
}
