// Class 1: kernels read beyond the tag their pointer lands in.
#include "fw_env.h"

namespace fw {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// A tensor loaded through a 1.5 MiB bounce buffer: six tags, one weight.
TEST(Reach, TensorLoadedInPieces) {
  const auto data = weights(8 * kMiB, 1);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, 3 * kMiB / 2);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(6 * kMiB);
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  // An interior pointer reading across the later pieces.
  EXPECT_EQ(host_hash(data.data() + 3 * kMiB + 100, 4 * kMiB), device_hash(w + 3 * kMiB + 100, 4 * kMiB));
  cuMemFree(w);
}

// An FSDP-style flat parameter: parameters copied one by one with padding
// between them, read by one kernel from the base.
TEST(Reach, FlatParameterReadFromBase) {
  const size_t total = 16 * kMiB;
  CUdeviceptr flat = alloc(total);
  ASSERT_EQ(CUDA_SUCCESS, cuMemsetD8(flat, 0, total));
  std::vector<uint8_t> host(total, 0);
  const size_t sizes[] = {3 * kMiB + 4096 + 6, 5 * kMiB - 12, 2 * kMiB + 300, 4 * kMiB + 1000};
  size_t off = 0;
  uint32_t seed = 10;
  for (size_t s : sizes) {
    const auto p = weights(s, seed++);
    ASSERT_EQ(CUDA_SUCCESS, cuMemcpyHtoD(flat + off, p.data(), p.size()));
    std::copy(p.begin(), p.end(), host.begin() + off);
    off = (off + s + 511) / 512 * 512 + 512;  // aligned, with a gap
  }
  ASSERT_LE(off, total);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  EXPECT_EQ(host_hash(host.data(), total), device_hash(flat, total));
  cuMemFree(flat);
}

// A caching allocator reuses a block that starts before a freed weight: the
// kernel writes and reads from an untagged pointer into the compressed pages.
TEST(Reach, BlockReusedBeforeFreedWeight) {
  const size_t total = 8 * kMiB;
  CUdeviceptr seg = alloc(total);
  const auto w = weights(6 * kMiB, 3);
  ASSERT_EQ(CUDA_SUCCESS, cuMemcpyHtoD(seg + 2 * kMiB, w.data(), w.size()));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  // The weight is "freed" inside the allocator (no cuMemFree); a 4 MiB block
  // at offset 1 MiB is handed out and filled by a kernel.
  CUdeviceptr block = seg + kMiB;
  uint64_t n = 4 * kMiB;
  uint32_t v = 7;
  void* params[] = {&block, &n, &v};
  ASSERT_EQ(CUDA_SUCCESS, cuLaunchKernel(Env::get().fn("fill_bytes"), 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr));
  std::vector<uint8_t> sevens(n, 7);
  EXPECT_EQ(host_hash(sevens.data(), n), device_hash(block, n));
  // The rest of the old weight is intact.
  EXPECT_EQ(host_hash(w.data() + 3 * kMiB, 3 * kMiB), device_hash(seg + 5 * kMiB, 3 * kMiB));
  ASSERT_EQ(CUDA_SUCCESS, cuCtxSynchronize());
  cuMemFree(seg);
}

// A kernel given one-past-the-end and reading backwards.
TEST(Reach, OnePastTheEndPointer) {
  const auto data = weights(4 * kMiB, 4);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  static CUdeviceptr out = alloc(64);
  CUdeviceptr end = w + data.size();
  uint64_t n = data.size();
  EXPECT_EQ(host_hash(data.data(), n), launch_and_read(Env::get().fn("sum_back"), {&end, &n, &out}, out));
  cuMemFree(w);
}

}  // namespace
}  // namespace fw
