// transfer_spans_test.cpp: byte ranges the shim reports for 2D/3D copies and TMA.
#include "transfer_spans.h"

#include <gtest/gtest.h>

namespace nz::shim {
namespace {

TEST(TransferSpans, PitchedExtentIsBoundingRange) {
  EXPECT_EQ(pitched_extent(256, 100, 3), 2u * 256 + 100);
  EXPECT_EQ(pitched_extent(256, 0, 3), 0u);
  EXPECT_EQ(pitched_extent(256, 100, 0), 0u);
}

TEST(TransferSpans, Copy2DHostToDevice) {
  CUDA_MEMCPY2D c{};
  c.srcMemoryType = CU_MEMORYTYPE_HOST;
  c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  c.dstDevice = 0x10000;
  c.dstXInBytes = 8;
  c.dstY = 2;
  c.dstPitch = 512;
  c.WidthInBytes = 64;
  c.Height = 4;
  const SpanPair p = spans_of(c);
  ASSERT_EQ(p.count, 1u);
  EXPECT_TRUE(p.host_to_device);
  EXPECT_EQ(p.spans[0].ptr, 0x10000u + 2 * 512 + 8);
  EXPECT_EQ(p.spans[0].bytes, 3u * 512 + 64);
  EXPECT_EQ(p.spans[0].access, rt::Access::kWrite);
}

TEST(TransferSpans, Copy3DDeviceToDeviceBothSides) {
  CUDA_MEMCPY3D c{};
  c.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  c.dstMemoryType = CU_MEMORYTYPE_UNIFIED;
  c.srcDevice = 0x1000;
  c.srcPitch = 128;
  c.srcHeight = 10;
  c.srcZ = 1;
  c.dstDevice = 0x900000;
  c.dstPitch = 64;
  c.dstHeight = 0;  // allowed when depth is 1... here rows follow each other
  c.WidthInBytes = 32;
  c.Height = 4;
  c.Depth = 2;
  const SpanPair p = spans_of(c);
  ASSERT_EQ(p.count, 2u);
  EXPECT_FALSE(p.host_to_device);
  EXPECT_EQ(p.spans[0].ptr, 0x1000u + 1 * 10 * 128);
  EXPECT_EQ(p.spans[0].bytes, (1u * 10 + 3) * 128 + 32);
  EXPECT_EQ(p.spans[0].access, rt::Access::kRead);
  EXPECT_EQ(p.spans[1].ptr, 0x900000u);
  EXPECT_EQ(p.spans[1].bytes, (1u * 4 + 3) * 64 + 32);
}

TEST(TransferSpans, ArraysAndHostAreNotReported) {
  CUDA_MEMCPY2D c{};
  c.srcMemoryType = CU_MEMORYTYPE_ARRAY;
  c.dstMemoryType = CU_MEMORYTYPE_HOST;
  c.WidthInBytes = 4;
  c.Height = 1;
  EXPECT_EQ(spans_of(c).count, 0u);
}

TEST(TransferSpans, TensorMapExtent) {
  const cuuint64_t dims[2] = {1024, 16};      // 1024 bf16 per row, 16 rows
  const cuuint64_t strides[1] = {4096};       // rows 4 KiB apart (padded)
  EXPECT_EQ(tensor_map_extent(CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, dims, strides),
            15u * 4096 + 1024 * 2);
  EXPECT_EQ(tensor_map_extent(CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 1, dims, nullptr), 4096u);
  EXPECT_EQ(tensor_map_extent(CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 0, dims, nullptr), 0u);
}

}  // namespace
}  // namespace nz::shim
