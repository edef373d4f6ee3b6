// Classes 5 (pointer queries), 6 (allocation rounding), 7 (scale of tagging),
// 8 (out of memory at launch).
#include <dlfcn.h>

#include <string>

#include "fw_env.h"

namespace fw {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(PointerQueries, AnswerForTheWholeAllocation) {
  const auto data = weights(6 * kMiB, 5);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  for (size_t off : {size_t{0}, 2 * kMiB + 5, 5 * kMiB, data.size() - 1}) {
    SCOPED_TRACE(off);
    CUdeviceptr base = 0;
    size_t size = 0;
    CU_OK(cuMemGetAddressRange(&base, &size, w + off));
    EXPECT_EQ(w, base);
    EXPECT_EQ(data.size(), size);
    CUdeviceptr start = 0;
    size_t range = 0;
    CU_OK(cuPointerGetAttribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, w + off));
    CU_OK(cuPointerGetAttribute(&range, CU_POINTER_ATTRIBUTE_RANGE_SIZE, w + off));
    EXPECT_EQ(w, start);
    EXPECT_EQ(data.size(), range);
    unsigned type = 0;
    CU_OK(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, w + off));
    EXPECT_EQ(CU_MEMORYTYPE_DEVICE, type);
    CUcontext ctx = nullptr;
    CU_OK(cuPointerGetAttribute(&ctx, CU_POINTER_ATTRIBUTE_CONTEXT, w + off));
    EXPECT_EQ(Env::get().ctx, ctx);
    CUdeviceptr dp = 0;
    CU_OK(cuPointerGetAttribute(&dp, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, w + off));
    EXPECT_EQ(w + off, dp);
    // Triton's launcher asks several at once.
    CUpointer_attribute attrs[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                                   CU_POINTER_ATTRIBUTE_IS_MANAGED, CU_POINTER_ATTRIBUTE_RANGE_SIZE};
    unsigned t2 = 0;
    int ordinal = -1;
    unsigned managed = 7;
    size_t range2 = 0;
    void* values[] = {&t2, &ordinal, &managed, &range2};
    CU_OK(cuPointerGetAttributes(4, attrs, values, w + off));
    EXPECT_EQ(CU_MEMORYTYPE_DEVICE, t2);
    EXPECT_EQ(0, ordinal);
    EXPECT_EQ(0u, managed);
    EXPECT_EQ(data.size(), range2);
  }
  // cuMemAlloc memory has no VMM handle (NCCL/UCX choose their path on this).
  CUmemGenericAllocationHandle h = 0;
  EXPECT_NE(CUDA_SUCCESS, cuMemRetainAllocationHandle(&h, reinterpret_cast<void*>(w)));
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  cuMemFree(w);
}

TEST(PointerQueries, FreeAsyncFreesIt) {
  const size_t before = free_memory();
  const auto data = weights(8 * kMiB, 6);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(6 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CU_OK(cuMemFreeAsync(w, s));
  CU_OK(cuStreamSynchronize(s));
  CU_OK(cuStreamDestroy(s));
  // Everything it took (pages, store, staging) is back once the context is
  // idle (the store goes back in stream order on neuzip's own stream), give
  // or take one pooled staging handle.
  CU_OK(cuCtxSynchronize());
  EXPECT_GE(free_memory() + 2 * kMiB + kMiB / 2, before);
}

// Many buffers just over 2 MiB: neuzip must not make the program run out earlier.
TEST(Rounding, OddSizedBuffersFitAsWithoutNeuzip) {
  const size_t size = 2 * kMiB + 4096;
  const size_t start_free = free_memory();
  std::vector<CUdeviceptr> held;
  for (;;) {
    CUdeviceptr p = 0;
    if (cuMemAlloc(&p, size) != CUDA_SUCCESS) break;
    held.push_back(p);
    if (held.size() > 100000) break;
  }
  const size_t got = held.size() * size;
  // Without neuzip the simulator rounds to 4 KiB (plus nothing): nearly all
  // free memory is usable.
  EXPECT_GE(got, start_free - start_free / 32) << held.size() << " buffers of " << size;
  for (CUdeviceptr p : held) cuMemFree(p);
}

// A loader filling one arena with thousands of small copies (meson's timeout
// catches quadratic tagging: 8192 copies took minutes before).
TEST(Scale, ThousandsOfSmallCopiesIntoOneArena) {
  const auto data = weights(64 * kMiB, 7);
  CUdeviceptr arena = alloc(data.size());
  upload(arena, data, 8192);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(60 * kMiB);
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(arena, data.size()));
  cuMemFree(arena);
}

// vLLM sizes its KV cache from cuMemGetInfo after loading; a kernel touching
// several weights must still find room to stage them.
TEST(OutOfMemory, CacheSizedFromFreeMemoryLeavesRoomToStage) {
  const size_t n = 16 * kMiB;
  std::vector<std::vector<uint8_t>> host;
  std::vector<CUdeviceptr> w;
  for (uint32_t i = 0; i < 3; ++i) {
    host.push_back(weights(n, 20 + i));
    w.push_back(alloc(n));
    upload(w.back(), host.back(), 2 * kMiB);
  }
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(3 * n - 6 * kMiB);
  const size_t free = free_memory();
  const size_t cache_bytes = free / 100 * 95;
  CUdeviceptr cache = alloc(cache_bytes);
  ASSERT_NE(0u, cache);
  CUdeviceptr ptrs_dev = alloc(64);
  std::vector<CUdeviceptr> ptrs = w;
  // The pointer array names the weights (class 11 shows how neuzip finds them).
  CU_OK(cuMemcpyHtoD(ptrs_dev, ptrs.data(), ptrs.size() * 8));
  static CUdeviceptr out = alloc(64);
  uint64_t count = 3, each = n;
  CUresult launched = CUDA_SUCCESS;
  const uint64_t got = launch_and_read(Env::get().fn("sum_ptrs"), {&ptrs_dev, &count, &each, &out}, out, nullptr, &launched);
  EXPECT_EQ(CUDA_SUCCESS, launched);
  uint64_t want = 0;
  for (auto& h : host) want = want * 31 + host_hash(h.data(), n);
  EXPECT_EQ(want, got);
  cuMemFree(cache);
  for (auto p : w) cuMemFree(p);
  cuMemFree(ptrs_dev);
}

// MPI, UCX and libfabric (aws-ofi-nccl over EFA) set SYNC_MEMOPS on a
// buffer a NIC will read. On cuMemAlloc memory the driver takes it; on
// virtual memory it says CUDA_ERROR_NOT_SUPPORTED and libfabric fails the
// transfer. On memory neuzip serves it must succeed as on cuMemAlloc memory,
// compressed or not, and the promise must hold (the context flag).
TEST(PointerQueries, SyncMemopsSetsAsOnCuMemAllocMemory) {
  const auto data = weights(6 * kMiB, 31);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  const unsigned one = 1, zero = 0;
  CU_OK(cuPointerSetAttribute(&one, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, w + 3 * kMiB + 1));
  CU_OK(cuPointerSetAttribute(&zero, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, w));
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuPointerSetAttribute(nullptr, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, w));
  int sync = 0;
  CU_OK(cuPointerGetAttribute(&sync, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, w));
  EXPECT_EQ(1, sync);
  if (Env::get().neuzip()) {
    unsigned flags = 0;
    CU_OK(cuCtxGetFlags(&flags));
    EXPECT_NE(0u, flags & CU_CTX_SYNC_MEMOPS) << "the promise is kept for the whole context";
    // Memory neuzip does not serve still goes to the driver.
    CUdeviceptr small = 0;
    CU_OK(cuMemAlloc(&small, 4096));
    CU_OK(cuPointerSetAttribute(&one, CU_POINTER_ATTRIBUTE_SYNC_MEMOPS, small));
    CU_OK(cuMemFree(small));
  }
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CU_OK(cuMemFree(w));
}

// The same stacks ask whether a NIC may read the buffer directly (GPUDirect
// RDMA). cuMemAlloc memory may; virtual memory only if created asking for
// it. Memory neuzip serves answers as cuMemAlloc memory, and its pages
// (staged ones included) are created that way where the device allows it.
TEST(PointerQueries, GpuDirectRdmaCapableAsCuMemAllocMemory) {
  const auto data = weights(6 * kMiB, 32);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  int capable = 0;
  CU_OK(cuPointerGetAttribute(&capable, CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE, w + kMiB));
  EXPECT_EQ(1, capable) << "resident";
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  capable = 0;
  CU_OK(cuPointerGetAttribute(&capable, CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE, w + kMiB));
  EXPECT_EQ(1, capable) << "compressed";
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CU_OK(cuMemFree(w));
}

}  // namespace
}  // namespace fw
