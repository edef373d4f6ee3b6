// Lossy mode end to end (run with NEUZIP_MODE=lossy:3:512): ranges declared
// bf16 by nz_tag are stored lossy; what a kernel reads is bit-identical to the
// CPU codec's lossy round trip; an unchanged lossy range is dropped, not
// recompressed (its reference hash is that of the lossy content). Ranges
// tagged as plain bytes stay lossless.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "hooked_driver.h"
#include "neuzip/neuzip.h"
#include "neuzip/runtime.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt::test {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

std::vector<uint16_t> cpu_lossy_round_trip(const std::vector<uint16_t>& w, uint32_t k, uint32_t block) {
  nz_options opts;
  nz_options_default(&opts, NZ_BF16);
  opts.mode = NZ_LOSSY;
  opts.kept_bits = k;
  opts.block_size = block;
  std::vector<uint8_t> packed(nz_compress_bound(w.size(), &opts));
  size_t len = 0;
  EXPECT_EQ(nz_compress(w.data(), w.size(), &opts, packed.data(), packed.size(), &len), NZ_OK);
  std::vector<uint16_t> out(w.size());
  EXPECT_EQ(nz_decompress(packed.data(), len, out.data(), out.size() * 2, 1), NZ_OK);
  return out;
}

TEST(RuntimeLossy, DeclaredBf16RangesAreLossyAndDroppedWhenUnchanged) {
  const char* mode = std::getenv("NEUZIP_MODE");
  if (mode == nullptr || std::string(mode) != "lossy:3:512") GTEST_SKIP() << "run with NEUZIP_MODE=lossy:3:512";
  HookedDriver d;
  const std::string error = d.start(test_module_path());
  if (!error.empty()) GTEST_SKIP() << error;
  ASSERT_TRUE(nz::rt::active());
  auto w = bf16_weights(2 * kMiB, 11);
  CUdeviceptr lossy = d.alloc(w.size() * 2), exact = d.alloc(w.size() * 2);
  ASSERT_EQ(d.htod(lossy, w.data(), w.size() * 2), CUDA_SUCCESS);  // tagged as bytes first...
  ASSERT_EQ(nz_tag(lossy, w.size() * 2, NZ_TAG_BF16), NZ_RT_OK);   // ...then declared bf16
  ASSERT_EQ(d.htod(exact, w.data(), w.size() * 2), CUDA_SUCCESS);  // bytes: lossless
  Runtime::get().compress_pending(true);
  nz_runtime_stats s0{};
  ASSERT_EQ(nz_stats(&s0, sizeof s0), NZ_RT_OK);
  EXPECT_EQ(s0.bytes_original_compressed, 2 * w.size() * 2);
  // Each weight is compressed as units of at most kMaxUnitBytes, each counted.
  const uint64_t units = (w.size() * 2 + nz::rt::detail::kMaxUnitBytes - 1) / nz::rt::detail::kMaxUnitBytes;

  // A range filled from the host is compressed once it proves long-lived (or
  // at a forced point, here compress_pending(true)), so the declaration came
  // first and it was encoded lossy directly: no lossless encoding to redo.
  EXPECT_EQ(s0.recompressions, 0u);
  std::vector<uint16_t> back(w.size());
  ASSERT_EQ(d.dtoh(back.data(), lossy, back.size() * 2), CUDA_SUCCESS);
  EXPECT_EQ(back, cpu_lossy_round_trip(w, 3, 512));
  EXPECT_NE(back, w);
  ASSERT_EQ(d.dtoh(back.data(), exact, back.size() * 2), CUDA_SUCCESS);
  EXPECT_EQ(back, w);

  Runtime::get().evict_idle();
  nz_runtime_stats s1{};
  ASSERT_EQ(nz_stats(&s1, sizeof s1), NZ_RT_OK);
  EXPECT_EQ(s1.drops, s0.drops + 2 * units);
  EXPECT_EQ(s1.recompressions, s0.recompressions);
  ASSERT_EQ(d.real().base.cuCtxSynchronize(), CUDA_SUCCESS);
  d.free(lossy);
  d.free(exact);
}

}  // namespace
}  // namespace nz::rt::test
