// transfer_spans_test.cpp: byte ranges the shim reports for 2D/3D copies and TMA.
#include <vector>

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

// cuMemcpy3DBatchAsync: rowLength and layerHeight are in elements (0 =
// packed to the extent); between a pointer and an array the pointer side's
// range scales with the array's element size; an array side is not reported.
TEST(TransferSpans, Batch3DOperationPointerSides) {
  CUDA_MEMCPY3D_BATCH_OP op{};
  op.src.type = op.dst.type = CU_MEMCPY_OPERAND_TYPE_POINTER;
  op.src.op.ptr.ptr = 0x1000;
  op.src.op.ptr.rowLength = 100;
  op.src.op.ptr.layerHeight = 7;
  op.dst.op.ptr.ptr = 0x900000;  // packed
  op.extent = {32, 4, 3};
  SpanPair p = spans_of(op, 1);
  ASSERT_EQ(p.count, 2u);
  EXPECT_EQ(p.spans[0].ptr, 0x1000u);
  EXPECT_EQ(p.spans[0].bytes, (2u * 7 + 3) * 100 + 32);
  EXPECT_EQ(p.spans[0].access, rt::Access::kRead);
  EXPECT_EQ(p.spans[1].ptr, 0x900000u);
  EXPECT_EQ(p.spans[1].bytes, 32u * 4 * 3);
  EXPECT_EQ(p.spans[1].access, rt::Access::kWrite);
  op.dst.type = CU_MEMCPY_OPERAND_TYPE_ARRAY;  // to an array of 8-byte elements
  p = spans_of(op, 8);
  ASSERT_EQ(p.count, 1u);
  EXPECT_EQ(p.spans[0].bytes, ((2u * 7 + 3) * 100 + 32) * 8);
  EXPECT_EQ(p.spans[0].access, rt::Access::kRead);
}

// Stream memory operations: writes are written words, waits read ones,
// flushes and barriers touch nothing.
TEST(TransferSpans, MemOpWords) {
  CUstreamBatchMemOpParams ops[4]{};
  ops[0].writeValue.operation = CU_STREAM_MEM_OP_WRITE_VALUE_64;
  ops[0].writeValue.address = 0x2000;
  ops[1].waitValue.operation = CU_STREAM_MEM_OP_WAIT_VALUE_32;
  ops[1].waitValue.address = 0x3000;
  ops[2].flushRemoteWrites.operation = CU_STREAM_MEM_OP_FLUSH_REMOTE_WRITES;
  ops[3].writeValue.operation = CU_STREAM_MEM_OP_WRITE_VALUE_32;
  ops[3].writeValue.address = 0x4004;
  std::vector<rt::Span> spans;
  append_memop_spans(ops, 4, spans);
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].ptr, 0x2000u);
  EXPECT_EQ(spans[0].bytes, 8u);
  EXPECT_EQ(spans[0].access, rt::Access::kWrite);
  EXPECT_EQ(spans[1].ptr, 0x3000u);
  EXPECT_EQ(spans[1].bytes, 4u);
  EXPECT_EQ(spans[1].access, rt::Access::kRead);
  EXPECT_EQ(spans[2].ptr, 0x4004u);
  EXPECT_EQ(spans[2].bytes, 4u);
}

}  // namespace
}  // namespace nz::shim
