// Class 1: kernels read beyond the tag their pointer lands in.
#include <cstdlib>
#include <string>

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

// `data` loaded into an allocation of its size in copies of `piece` bytes
// (one tag each), then summed by a kernel given one past the allocation's
// end and reading backwards over all of it.
void expect_sum_back_from_the_end(const std::vector<uint8_t>& data, size_t piece) {
  CUdeviceptr w = alloc(data.size());
  upload(w, data, piece);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(data.size());
  static CUdeviceptr out = alloc(64);
  CUdeviceptr end = w + data.size();
  uint64_t n = data.size();
  EXPECT_EQ(host_hash(data.data(), n), launch_and_read(Env::get().fn("sum_back"), {&end, &n, &out}, out));
  ASSERT_EQ(CUDA_SUCCESS, cuCtxSynchronize());
  cuMemFree(w);
}

// A kernel given one-past-the-end and reading backwards.
TEST(Reach, OnePastTheEndPointer) { expect_sum_back_from_the_end(weights(4 * kMiB, 4), 4 * kMiB); }

// A framework that declares its tensors (nz_tag; neuzip.tag in Python)
// with NEUZIP_TAG_EXTENTS=1 (frameworks-declared-extents) promises that its
// kernels read each one only within itself: an interior pointer then stages
// its tensor's units, not the later tensors of its segment. Without the
// setting (frameworks-reach) the same reads stage the cluster from there on.
bool tag_extents() {
  const char* v = std::getenv("NEUZIP_TAG_EXTENTS");
  return Env::get().neuzip() && v != nullptr && std::string(v) == "1";
}

TEST(DeclaredExtents, InteriorPointerStagesItsTensorOnly) {
  constexpr size_t kPart = 4 * kMiB;
  const std::vector<uint8_t> host = weights(3 * kPart, 41);
  CUdeviceptr dev = alloc(host.size());
  upload(dev, host, kPart);  // three adjacent tensors, as a caching allocator packs them
  for (int t = 0; t < 3; ++t) {
    EXPECT_EQ(Env::get().declare(dev + t * kPart, kPart, NZ_TAG_BF16), Env::get().neuzip());
  }
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(3 * kPart);
  const bool bounded = tag_extents();
  // Inside the middle tensor, to its end.
  const uint64_t d0 = Env::get().stats().decompressions;
  EXPECT_EQ(host_hash(host.data() + kPart + 4096, kPart - 4096), device_hash(dev + kPart + 4096, kPart - 4096));
  const uint64_t d1 = Env::get().stats().decompressions;
  if (bounded) {
    EXPECT_EQ(d1 - d0, kPart / (2 * kMiB)) << "an interior pointer staged more than its tensor";
  } else if (Env::get().neuzip()) {
    EXPECT_EQ(d1 - d0, 2 * kPart / (2 * kMiB)) << "the reach: the cluster from there on";
  }
  // The first tensor from its base (no tensor before it to end there).
  EXPECT_EQ(host_hash(host.data(), kPart), device_hash(dev, kPart));
  const uint64_t d2 = Env::get().stats().decompressions;
  if (bounded) {
    EXPECT_EQ(d2 - d1, kPart / (2 * kMiB)) << "a base pointer staged more than its tensor";
  }
  ASSERT_EQ(CUDA_SUCCESS, cuCtxSynchronize());
  cuMemFree(dev);
}

// A declared tensor followed (512-byte aligned, as a caching allocator packs
// them) by one that is not: the undeclared one, read from its first byte (also
// the declared one's end), reaches on as any tag does. (The random programs'
// list reads found it: seed 200 with NEUZIP_TAG_EXTENTS=1.)
TEST(DeclaredExtents, UndeclaredAfterDeclaredReadsOn) {
  const size_t a_bytes = 3371436, b_at = (a_bytes + 511) / 512 * 512, b_bytes = 4223966;
  const std::vector<uint8_t> a = weights(a_bytes, 44), b = weights(b_bytes, 45);
  CUdeviceptr dev = alloc(8 * kMiB);
  upload(dev, a, a.size());
  EXPECT_EQ(Env::get().declare(dev, a_bytes, NZ_TAG_FP16), Env::get().neuzip());
  upload(dev + b_at, b, b.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  EXPECT_EQ(host_hash(b.data(), 3499174), device_hash(dev + b_at, 3499174));
  ASSERT_EQ(CUDA_SUCCESS, cuCtxSynchronize());
  cuMemFree(dev);
}

// The declaration stops binding where the program takes it back in part or
// loads a larger tensor over it: reads across them stay exact.
TEST(DeclaredExtents, UntaggedInPartOrOverwrittenLargerReadsWhole) {
  const std::vector<uint8_t> host = weights(8 * kMiB, 42);
  {  // Untagged in its middle, then read whole from its base.
    CUdeviceptr dev = alloc(host.size());
    upload(dev, host, host.size());
    EXPECT_EQ(Env::get().declare(dev, host.size(), NZ_TAG_BF16), Env::get().neuzip());
    Env::get().flush();
    EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
    EXPECT_EQ(Env::get().undeclare(dev + 2 * kMiB + 0x1234, 3 * kMiB), Env::get().neuzip());
    EXPECT_EQ(host_hash(host.data(), host.size()), device_hash(dev, host.size()));
    ASSERT_EQ(CUDA_SUCCESS, cuCtxSynchronize());
    cuMemFree(dev);
  }
  {  // A 4 MiB tensor declared; an 8 MiB one loaded over it (its tag grows).
    CUdeviceptr dev = alloc(host.size());
    const std::vector<uint8_t> small = weights(4 * kMiB, 43);
    upload(dev, small, small.size());
    EXPECT_EQ(Env::get().declare(dev, small.size(), NZ_TAG_BF16), Env::get().neuzip());
    Env::get().flush();
    upload(dev, host, host.size());
    Env::get().flush();
    EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
    EXPECT_EQ(host_hash(host.data() + 4096, host.size() - 4096), device_hash(dev + 4096, host.size() - 4096));
    ASSERT_EQ(CUDA_SUCCESS, cuCtxSynchronize());
    cuMemFree(dev);
  }
}

// One past the end of an allocation that two adjacent weights fill to its
// last byte, read backwards over both: that address is also the byte after
// the cluster (its last tag's), but at the allocation's end it reaches every
// unit, in doubt (a reverse iterator over the whole segment).
TEST(Reach, OnePastTheAllocationEndReadsBackAcrossTensors) {
  // Two tags, one cluster, ending at the allocation's end.
  expect_sum_back_from_the_end(weights(8 * kMiB, 46), 4 * kMiB);
}

}  // namespace
}  // namespace fw
