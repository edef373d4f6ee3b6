// Memory neuzip passes through (src/runtime/unserved_memory.h): the counts
// behind the notice, and which PyTorch allocator settings call for it.
#include "runtime/unserved_memory.h"

#include <gtest/gtest.h>

namespace nz::rt {
namespace {

TEST(UnservedMemory, CountsLiveAndPeakPerKind) {
  UnservedMemory m;
  EXPECT_EQ(m.add(UnservedKind::kProgramVmm, 0x10, 20u << 20), 20u << 20);
  EXPECT_EQ(m.add(UnservedKind::kProgramVmm, 0x11, 2u << 20), 22u << 20);
  // A pointer and a handle may share a value: kinds are counted apart.
  EXPECT_EQ(m.add(UnservedKind::kStreamOrdered, 0x10, 8u << 20), 8u << 20);
  EXPECT_EQ(m.peak_total(), 30u << 20);
  m.remove(UnservedKind::kProgramVmm, 0x10);
  EXPECT_EQ(m.live(UnservedKind::kProgramVmm), 2u << 20);
  EXPECT_EQ(m.live(UnservedKind::kStreamOrdered), 8u << 20) << "the other kind's key is untouched";
  m.remove(UnservedKind::kProgramVmm, 0x99);
  EXPECT_EQ(m.live(UnservedKind::kProgramVmm), 2u << 20) << "an unknown key changes nothing";
  EXPECT_EQ(m.peak(UnservedKind::kProgramVmm), 22u << 20);
  // A key seen again without its release (a release we missed) counts once, at its new size.
  EXPECT_EQ(m.add(UnservedKind::kStreamOrdered, 0x10, 4u << 20), 4u << 20);
  m.remove(UnservedKind::kStreamOrdered, 0x10);
  EXPECT_EQ(m.live(UnservedKind::kStreamOrdered), 0u);
  EXPECT_EQ(m.peak_total(), 30u << 20);
}

// cuMemRetainAllocationHandle hands the program the mapped handle again,
// and it releases it once more: the memory goes with the last release.
TEST(UnservedMemory, RetainedHandlesGoWithTheirLastRelease) {
  UnservedMemory m;
  m.add(UnservedKind::kProgramVmm, 0x20, 20u << 20);
  m.retain(UnservedKind::kProgramVmm, 0x20);
  m.retain(UnservedKind::kProgramVmm, 0x21);  // unknown: ignored
  m.remove(UnservedKind::kProgramVmm, 0x20);
  EXPECT_EQ(m.live(UnservedKind::kProgramVmm), 20u << 20) << "one reference left";
  m.remove(UnservedKind::kProgramVmm, 0x20);
  EXPECT_EQ(m.live(UnservedKind::kProgramVmm), 0u);
  m.remove(UnservedKind::kProgramVmm, 0x20);
  EXPECT_EQ(m.live(UnservedKind::kProgramVmm), 0u) << "a release too many changes nothing";
}

TEST(UnservedMemory, ReadsPyTorchAllocatorSettings) {
  EXPECT_EQ(pytorch_conf_unserved(nullptr), std::nullopt);
  EXPECT_EQ(pytorch_conf_unserved(""), std::nullopt);
  EXPECT_EQ(pytorch_conf_unserved("expandable_segments:True"), UnservedKind::kProgramVmm);
  EXPECT_EQ(pytorch_conf_unserved("max_split_size_mb:128, expandable_segments:True"), UnservedKind::kProgramVmm);
  EXPECT_EQ(pytorch_conf_unserved("expandable_segments:False"), std::nullopt);
  EXPECT_EQ(pytorch_conf_unserved("expandable_segments:True,expandable_segments:False"), std::nullopt)
      << "the later setting wins";
  EXPECT_EQ(pytorch_conf_unserved("roundup_power2_divisions:[256:1,512:2],garbage_collection_threshold:0.6"),
            std::nullopt);
  EXPECT_EQ(pytorch_conf_unserved("backend:cudaMallocAsync"), UnservedKind::kStreamOrdered);
  EXPECT_EQ(pytorch_conf_unserved("expandable_segments:True,backend:cudaMallocAsync"), UnservedKind::kStreamOrdered)
      << "PyTorch's async backend ignores expandable segments";
  EXPECT_EQ(pytorch_conf_unserved("backend:native"), std::nullopt);
  EXPECT_EQ(pytorch_conf_unserved("expandable_segments"), std::nullopt) << "a key without a value";
}

TEST(UnservedMemory, NoticeNamesTheSettingAndTheWayOut) {
  const std::string size = unserved_notice(UnservedKind::kProgramVmm, 96u << 20, nullptr);
  EXPECT_NE(size.find("96 MiB"), std::string::npos) << size;
  EXPECT_NE(size.find("drop expandable_segments:True"), std::string::npos) << size;
  const std::string env = unserved_notice(UnservedKind::kStreamOrdered, 0, "PYTORCH_ALLOC_CONF");
  EXPECT_NE(env.find("PYTORCH_ALLOC_CONF sets backend:cudaMallocAsync"), std::string::npos) << env;
  EXPECT_NE(env.find("drop backend:cudaMallocAsync"), std::string::npos) << env;
}

}  // namespace
}  // namespace nz::rt
