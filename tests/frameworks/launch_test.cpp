// Classes 3 (handle reuse after unload), 9 (TMA descriptors), 10 (kernel
// handles), 11 (pointers stored in device memory).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "fw_env.h"

namespace fw {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(HandleReuse, NewKernelWithAnUnloadedHandleIsScannedAfresh) {
  Weight w(4 * kMiB, 30);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  CUmodule small;
  CU_OK(cuModuleLoad(&small, Env::get().small_module_path.c_str()));
  CUfunction noop;
  CU_OK(cuModuleGetFunction(&noop, small, "noop_u64"));
  uint64_t x = 5;
  void* p1[] = {&x};
  CU_OK(cuLaunchKernel(noop, 1, 1, 1, 1, 1, 1, 0, nullptr, p1, nullptr));
  CU_OK(cuCtxSynchronize());
  CU_OK(cuModuleUnload(small));
  CUmodule again;
  CU_OK(cuModuleLoad(&again, Env::get().module_path.c_str()));
  CUfunction f;
  CU_OK(cuModuleGetFunction(&f, again, "sum_bytes_nfirst"));
  ASSERT_EQ(static_cast<void*>(noop), static_cast<void*>(f)) << "the driver did not reuse the handle";
  static CUdeviceptr out = alloc(64);
  uint64_t n = w.host.size();
  EXPECT_EQ(w.hash(), launch_and_read(f, {&n, &w.dev, &out}, out));
  CU_OK(cuModuleUnload(again));
}

TEST(HandleReuse, LibraryUnloadToo) {
  Weight w(4 * kMiB, 31);
  Env::get().flush();
  CUlibrary small;
  CU_OK(cuLibraryLoadFromFile(&small, Env::get().small_module_path.c_str(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  CUkernel noop;
  CU_OK(cuLibraryGetKernel(&noop, small, "noop_u64"));
  uint64_t x = 5;
  void* p1[] = {&x};
  CU_OK(cuLaunchKernel(reinterpret_cast<CUfunction>(noop), 1, 1, 1, 1, 1, 1, 0, nullptr, p1, nullptr));
  CU_OK(cuCtxSynchronize());
  CU_OK(cuLibraryUnload(small));
  CUlibrary lib;
  CU_OK(cuLibraryLoadFromFile(&lib, Env::get().module_path.c_str(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  CUkernel k;
  CU_OK(cuLibraryGetKernel(&k, lib, "sum_bytes_nfirst"));
  ASSERT_EQ(static_cast<void*>(noop), static_cast<void*>(k)) << "the driver did not reuse the handle";
  static CUdeviceptr out = alloc(64);
  uint64_t n = w.host.size();
  EXPECT_EQ(w.hash(), launch_and_read(reinterpret_cast<CUfunction>(k), {&n, &w.dev, &out}, out));
  CU_OK(cuLibraryUnload(lib));
}

// CUDA 13's runtime launches cudaKernel_t handles it did not get through
// cuLibraryGetKernel (here: cuLibraryEnumerateKernels), cast to CUfunction.
TEST(KernelHandles, KernelHandleNeverSeenBefore) {
  Weight w(4 * kMiB, 32);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  CUlibrary lib;
  CU_OK(cuLibraryLoadFromFile(&lib, Env::get().module_path.c_str(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  unsigned count = 0;
  CU_OK(cuLibraryGetKernelCount(&count, lib));
  std::vector<CUkernel> ks(count);
  CU_OK(cuLibraryEnumerateKernels(ks.data(), count, lib));
  CUkernel sum = nullptr;
  for (CUkernel k : ks) {
    const char* name = nullptr;
    CU_OK(cuKernelGetName(&name, k));
    if (std::strcmp(name, "sum_bytes") == 0) sum = k;
  }
  ASSERT_NE(nullptr, sum);
  static CUdeviceptr out = alloc(64);
  uint64_t n = w.host.size();
  EXPECT_EQ(w.hash(), launch_and_read(reinterpret_cast<CUfunction>(sum), {&w.dev, &n, &out}, out));
  CU_OK(cuLibraryUnload(lib));
}

// Hopper GEMMs see their operands only through a TMA descriptor passed by value.
TEST(Tma, DescriptorPassedByValue) {
  Weight w(4 * kMiB, 33);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  CUtensorMap map;
  cuuint64_t dims[2] = {1024, w.host.size() / 2048};
  cuuint64_t strides[1] = {2048};
  cuuint32_t box[2] = {64, 64}, es[2] = {1, 1};
  CU_OK(cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, reinterpret_cast<void*>(w.dev), dims,
                               strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                               CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  static CUdeviceptr out = alloc(64);
  uint64_t n = w.host.size();
  EXPECT_EQ(w.hash(), launch_and_read(Env::get().fn("sum_tma"), {&map, &n, &out}, out));
  // Re-pointed at another weight (cuTensorMapReplaceAddress).
  Weight w2(4 * kMiB, 34);
  Env::get().flush();
  CU_OK(cuTensorMapReplaceAddress(&map, reinterpret_cast<void*>(w2.dev)));
  EXPECT_EQ(w2.hash(), launch_and_read(Env::get().fn("sum_tma"), {&map, &n, &out}, out));
}

// A TMA unit reads nothing outside the descriptor's tensor (out-of-bounds
// elements are filled, never read). With NEUZIP_TMA_EXTENTS=1
// (frameworks-tma-extents) a launch that reaches a weight only through a
// descriptor stages that weight's units, not the rest of its cluster (three
// weights loaded back to back into one allocation, as a caching allocator
// packs them); a raw pointer still reaches on. Without it: the cluster.
TEST(Tma, DescriptorStagesItsTensorOnly) {
  constexpr size_t kPart = 4 * kMiB;
  const std::vector<uint8_t> host = weights(3 * kPart, 37);
  CUdeviceptr dev = alloc(host.size());
  upload(dev, host, kPart);  // three adjacent tags
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(3 * kPart);
  const bool bounded = Env::get().neuzip() && std::getenv("NEUZIP_TMA_EXTENTS") != nullptr &&
                       std::string(std::getenv("NEUZIP_TMA_EXTENTS")) == "1";
  CUtensorMap map;
  cuuint64_t dims[2] = {1024, kPart / 2048};
  cuuint64_t strides[1] = {2048};
  cuuint32_t box[2] = {64, 64}, es[2] = {1, 1};
  CU_OK(cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, reinterpret_cast<void*>(dev + kPart),
                               dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                               CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  static CUdeviceptr out = alloc(64);
  uint64_t n = kPart;
  const uint64_t d0 = Env::get().stats().decompressions;
  EXPECT_EQ(host_hash(host.data() + kPart, kPart), launch_and_read(Env::get().fn("sum_tma"), {&map, &n, &out}, out));
  const uint64_t d1 = Env::get().stats().decompressions;
  if (bounded) {
    EXPECT_EQ(d1 - d0, kPart / (2 * kMiB)) << "the descriptor staged more than its tensor";
  } else if (Env::get().neuzip()) {
    // The reach of a pointer: the next weight, and the one before (the
    // address is also its one-past-the-end pointer).
    EXPECT_EQ(d1 - d0, 3 * kPart / (2 * kMiB)) << "the reach: the whole cluster";
  }

  // Re-pointed at the first weight: the extent carries over.
  CU_OK(cuTensorMapReplaceAddress(&map, reinterpret_cast<void*>(dev)));
  EXPECT_EQ(host_hash(host.data(), kPart), launch_and_read(Env::get().fn("sum_tma"), {&map, &n, &out}, out));
  const uint64_t d2 = Env::get().stats().decompressions;
  if (bounded) {
    EXPECT_EQ(d2 - d1, kPart / (2 * kMiB)) << "the re-pointed descriptor staged more than its tensor";
  }

  // A raw pointer to the first weight reads on over the other two: all exact.
  EXPECT_EQ(host_hash(host.data(), host.size()), device_hash(dev, host.size()));
  cuMemFree(dev);
}

// Grouped/batched GEMMs read their operands through a pointer array that was
// built on the host and copied in.
TEST(PointerArrays, GroupedGemmOperands) {
  Weight a(4 * kMiB, 35), b(6 * kMiB, 36);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
  CUdeviceptr array = alloc(256);
  const CUdeviceptr ptrs[2] = {a.dev + 1024, b.dev + 4096};
  CU_OK(cuMemcpyHtoD(array, ptrs, sizeof ptrs));
  static CUdeviceptr out = alloc(64);
  uint64_t count = 2, each = 2 * kMiB;
  uint64_t expect = 0;
  expect = expect * 31 + host_hash(a.host.data() + 1024, each);
  expect = expect * 31 + host_hash(b.host.data() + 4096, each);
  EXPECT_EQ(expect, launch_and_read(Env::get().fn("sum_ptrs"), {&array, &count, &each, &out}, out));
  cuMemFree(array);
}

// The same array copied in by a unified copy (cuMemcpy / cuMemcpyAsync from a
// host address: cudaMemcpy with cudaMemcpyDefault, as UVA programs write it).
// Until 2026-12-07 only the host-to-device forms were read for pointers (and
// only they tagged what they fill): the grouped read met unmapped pages.
TEST(PointerArrays, AnArrayCopiedInByAUnifiedCopy) {
  Weight a(4 * kMiB, 40), b(6 * kMiB, 41);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
  CUdeviceptr array = alloc(256);
  const CUdeviceptr ptrs[2] = {b.dev + 512, a.dev + 2048};
  CU_OK(cuMemcpy(array, reinterpret_cast<CUdeviceptr>(ptrs), sizeof ptrs));
  static CUdeviceptr out = alloc(64);
  uint64_t count = 2, each = 2 * kMiB;
  uint64_t expect = 0;
  expect = expect * 31 + host_hash(b.host.data() + 512, each);
  expect = expect * 31 + host_hash(a.host.data() + 2048, each);
  EXPECT_EQ(expect, launch_and_read(Env::get().fn("sum_ptrs"), {&array, &count, &each, &out}, out));
  const CUdeviceptr again[1] = {a.dev + 4096};
  CUstream s = nullptr;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CU_OK(cuMemcpyAsync(array, reinterpret_cast<CUdeviceptr>(again), sizeof again, s));
  CU_OK(cuStreamSynchronize(s));
  CU_OK(cuStreamDestroy(s));
  Env::get().flush();  // (everything idle compressed again)
  count = 1;
  EXPECT_EQ(host_hash(a.host.data() + 4096, each), launch_and_read(Env::get().fn("sum_ptrs"), {&array, &count, &each, &out}, out));
  cuMemFree(array);
}

// A grouped read: a setup kernel writes `count` pointers `stride` apart from
// `w.dev + offset` into an array (make_ptrs), and sum_ptrs reads `each`
// bytes at each through it, with parameters that name no weight.
struct GroupedRead {
  GroupedRead(const Weight& weight, size_t offset) : w(weight), base(weight.dev + offset), offset(offset) {}
  ~GroupedRead() {
    cuMemFree(array);
    cuMemFree(out);
  }
  void setup(CUstream s) {
    void* params[] = {&base, &stride, &count, &array};
    CU_OK(cuLaunchKernel(Env::get().fn("make_ptrs"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  }
  void read(CUstream s) {
    void* params[] = {&array, &count, &each, &out};
    CU_OK(cuLaunchKernel(Env::get().fn("sum_ptrs"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  }
  // After the read completed.
  void check() const {
    uint64_t expect = 0;
    for (uint64_t i = 0; i < count; ++i) expect = expect * 31 + host_hash(w.host.data() + offset + i * stride, each);
    EXPECT_EQ(expect, read_word(out)) << "the launch reading through the pointers read something else";
  }
  const Weight& w;
  CUdeviceptr base;
  size_t offset;
  CUdeviceptr array = alloc(256), out = alloc(64);
  uint64_t stride = kMiB, count = 2, each = kMiB;
};

// Three other 4 MiB weights, and a reader of them: under the 4 MiB budget,
// reading them evicts everything else.
struct OtherWeights {
  explicit OtherWeights(uint32_t seed) {
    for (uint32_t i = 0; i < 3; ++i) all.push_back(std::make_unique<Weight>(4 * kMiB, seed + i));
  }
  ~OtherWeights() { cuMemFree(out); }
  void read_all(CUstream t) {
    for (const auto& o : all) {
      uint64_t n = o->host.size();
      EXPECT_EQ(o->hash(), launch_and_read(Env::get().fn("sum_bytes"), {&o->dev, &n, &out}, out, t));
    }
  }
  std::vector<std::unique_ptr<Weight>> all;
  CUdeviceptr out = alloc(64);
};

// Two non-blocking streams, or the legacy stream twice.
struct TwoStreams {
  explicit TwoStreams(bool legacy = false) {
    if (legacy) return;
    EXPECT_EQ(CUDA_SUCCESS, cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    EXPECT_EQ(CUDA_SUCCESS, cuStreamCreate(&t, CU_STREAM_NON_BLOCKING));
  }
  ~TwoStreams() {
    if (s != nullptr) cuStreamDestroy(s);
    if (t != nullptr) cuStreamDestroy(t);
  }
  CUstream s = nullptr, t = nullptr;
};

// Pointers a kernel writes into device memory, read by the next launch on
// the same stream (a grouped GEMM's setup kernel building operand arrays
// from the weights' base pointers, then the GEMM reading through them:
// PyTorch's _grouped_mm, TensorRT-LLM's and MLX's grouped GEMMs). The GEMM's
// parameters name no weight: only the setup launch's use covered the
// weights, so an eviction waiting for that use alone unmapped them before
// the GEMM ran (under NZSIM_LAZY=1 the queue runs only as far as waited for:
// the setup kernel, not the GEMM). Another stream reads other weights
// meanwhile, under the 4 MiB budget.
TEST(DeviceBuiltPointers, TheNextLaunchOnTheStreamReadsThroughThem) {
  Weight w(4 * kMiB, 44);
  OtherWeights others(45);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(16 * kMiB);
  TwoStreams st;
  GroupedRead g(w, 2 * kMiB);
  g.setup(st.s);
  g.read(st.s);
  others.read_all(st.t);
  CU_OK(cuStreamSynchronize(st.s));
  g.check();
}

// The same, with another thread's launches between the setup kernel and the
// read (a second launching thread: data-parallel replicas in threads, a
// pipeline stage; the look-ahead stager makes room the same way). That
// thread cannot know whether the reading launch is queued yet: an event it
// records on the setup kernel's stream comes before the read. Until
// 2026-12-08 its evictions sealed such an event, waited for it and unmapped
// the weight, and the read met unmapped pages; on the legacy stream, which
// both threads share, its launches even ended the setup kernel's use for it.
// Now the units of a thread's last call on a stream are left alone by other
// threads for a while (trailing_uses.cpp). Both threads' streams: their own,
// and the legacy stream for both.
void another_thread_between(bool legacy) {
  Weight w(4 * kMiB, legacy ? 50 : 49);
  OtherWeights others(51);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(16 * kMiB);
  TwoStreams st(legacy);
  GroupedRead g(w, kMiB);
  g.setup(st.s);
  // The other thread reads every other weight under the 4 MiB budget, and
  // is done before this one queues the read.
  std::thread other([&] {
    cuCtxSetCurrent(Env::get().ctx);
    others.read_all(st.t);
  });
  other.join();
  g.read(st.s);
  ASSERT_EQ(CUDA_SUCCESS, cuStreamSynchronize(st.s)) << "the read met unmapped pages";
  g.check();
}

TEST(DeviceBuiltPointers, AnotherThreadsLaunchesBeforeTheReadLeaveThemMapped) { another_thread_between(false); }
TEST(DeviceBuiltPointers, AnotherThreadOnTheLegacyStreamLeavesThemMapped) { another_thread_between(true); }

// Both launches queued on the per-thread default stream (a program built
// with --default-stream per-thread: one handle, another stream in each
// thread), then another thread reads the other weights under the budget.
// That thread can neither record on the owner's stream nor ask about it:
// until 2026-12-08 the seal it recorded for the owner's open use went onto
// its own per-thread stream, waited for nothing, and under NZSIM_LAZY=1 the
// read (not run yet) met unmapped pages (the random programs' seed 5, two
// threads). Now such units are held from other threads for the second.
TEST(DeviceBuiltPointers, AnotherThreadAfterTheReadOnAPerThreadStreamLeavesThemMapped) {
  Weight w(4 * kMiB, 59);
  OtherWeights others(61);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(16 * kMiB);
  GroupedRead g(w, kMiB);
  g.setup(CU_STREAM_PER_THREAD);
  g.read(CU_STREAM_PER_THREAD);
  std::thread other([&] {
    cuCtxSetCurrent(Env::get().ctx);
    CUstream t = nullptr;
    EXPECT_EQ(CUDA_SUCCESS, cuStreamCreate(&t, CU_STREAM_NON_BLOCKING));
    others.read_all(t);
    cuStreamDestroy(t);
  });
  other.join();
  ASSERT_EQ(CUDA_SUCCESS, cuStreamSynchronize(CU_STREAM_PER_THREAD)) << "the read met unmapped pages";
  g.check();
}

// A weight used on a second stream after the setup kernel and the read were
// queued on the first (a layer shared by two streams' work). Until 2026-12-08
// a range remembered one such last call only: the call on the second stream
// replaced the first stream's, an eviction waited for the setup kernel and
// the second stream's call but not for the read queued between them, and
// under NZSIM_LAZY=1 the read met unmapped pages. Now every stream's (and
// thread's) last call is kept.
TEST(DeviceBuiltPointers, ALaterUseOnAnotherStreamLeavesTheFirstStreamsReadCovered) {
  Weight w(4 * kMiB, 55);
  OtherWeights others(56);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(16 * kMiB);
  TwoStreams st;
  GroupedRead g(w, kMiB);
  g.setup(st.s);
  g.read(st.s);
  // The weight on the second stream, then the others there (4 MiB budget).
  uint64_t n = w.host.size();
  EXPECT_EQ(w.hash(), launch_and_read(Env::get().fn("sum_bytes"), {&w.dev, &n, &others.out}, others.out, st.t));
  others.read_all(st.t);
  ASSERT_EQ(CUDA_SUCCESS, cuStreamSynchronize(st.s)) << "the read met unmapped pages";
  g.check();
}

// A weight loaded moments ago, not compressed yet: its compression is due
// once it has been used in two iterations (no fixed budget), and every
// launch hook starts with the compression of what is due. Until 2026-12-08
// the read's own hook compressed it — the setup kernel had completed, and
// the read, not queued yet, was taken for the next tracked call — and the
// read met unmapped pages (the random programs' seed 1, default settings,
// 2 runs in 8). The synchronisation between them makes it certain.
TEST(DeviceBuiltPointersLoaded, TheReadsOwnHookLeavesTheWeightMapped) {
  Weight w(4 * kMiB, 60);
  TwoStreams st;
  GroupedRead g(w, kMiB);
  CUdeviceptr input = alloc(4096);
  std::vector<uint8_t> host(4096);
  for (int it = 0; it < 3; ++it) {
    // An iteration starts with its input (how the runtime counts them).
    std::fill(host.begin(), host.end(), static_cast<uint8_t>(it));
    CU_OK(cuMemcpyHtoD(input, host.data(), host.size()));
    g.setup(st.s);
    CU_OK(cuStreamSynchronize(st.s));
    g.read(st.s);
    ASSERT_EQ(CUDA_SUCCESS, cuStreamSynchronize(st.s)) << "iteration " << it << ": the read met unmapped pages";
    g.check();
  }
  cuMemFree(input);
}

// A pointer array whose pointer lands in a weight far after another in the
// same allocation (a caching-allocator segment: weight A, activations the
// host never wrote, weight B more than 64 KiB on, so two clusters). What the
// array points into is learned by allocation; the allocation's base lies in
// A's tag, whose reach ends before B: B must be staged all the same. With
// NEUZIP_TAG_EXTENTS=1 and A declared, A's base reaches A alone (the random
// programs' list reads found that one: seed 200).
TEST(PointerArrays, TargetInALaterClusterOfItsAllocation) {
  const std::vector<uint8_t> a = weights(2 * kMiB, 38), b = weights(4 * kMiB, 39);
  CUdeviceptr seg = alloc(8 * kMiB);
  upload(seg, a, a.size());
  upload(seg + 4 * kMiB, b, b.size());
  if (Env::get().neuzip()) {
    EXPECT_TRUE(Env::get().declare(seg, a.size(), NZ_TAG_BF16));
  }
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(6 * kMiB);
  CUdeviceptr array = alloc(256);
  const CUdeviceptr ptrs[1] = {seg + 4 * kMiB + 4096};
  CU_OK(cuMemcpyHtoD(array, ptrs, sizeof ptrs));
  static CUdeviceptr out = alloc(64);
  uint64_t count = 1, each = 2 * kMiB;
  EXPECT_EQ(host_hash(b.data() + 4096, each), launch_and_read(Env::get().fn("sum_ptrs"), {&array, &count, &each, &out}, out));
  ASSERT_EQ(CUDA_SUCCESS, cuCtxSynchronize());
  cuMemFree(array);
  cuMemFree(seg);
}

}  // namespace
}  // namespace fw

namespace fw {
namespace {

// Device writes outside kernels (stream memory operations) into compressed weights.
TEST(UnseenWrites, StreamMemoryOperations) {
  auto host = weights(4 * (size_t{1} << 20), 37);
  CUdeviceptr w = alloc(host.size());
  upload(w, host, host.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * (size_t{1} << 20));
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  const uint32_t v32 = 0xdeadbeef;
  CU_OK(cuStreamWriteValue32(s, w + 8, v32, 0));
  CUstreamBatchMemOpParams op{};
  op.writeValue.operation = CU_STREAM_MEM_OP_WRITE_VALUE_64;
  op.writeValue.address = w + 3 * (size_t{1} << 20);
  op.writeValue.value64 = 0x0123456789abcdefull;
  CU_OK(cuStreamBatchMemOp(s, 1, &op, 0));
  CU_OK(cuStreamSynchronize(s));
  std::memcpy(&host[8], &v32, 4);
  const uint64_t v64 = op.writeValue.value64;
  std::memcpy(&host[3 * (size_t{1} << 20)], &v64, 8);
  EXPECT_EQ(host_hash(host.data(), host.size()), device_hash(w, host.size()));
  cuStreamDestroy(s);
  cuMemFree(w);
}

// cuMemcpyBatchAsync from the host fills weights like cuMemcpyHtoDAsync.
TEST(UnseenWrites, BatchedHostCopiesAreWeights) {
  const size_t piece = size_t{2} << 20;
  auto host = weights(4 * piece, 38);
  CUdeviceptr w = alloc(host.size());
  std::vector<CUdeviceptr> dsts, srcs;
  std::vector<size_t> sizes;
  for (size_t off = 0; off < host.size(); off += piece) {
    dsts.push_back(w + off);
    srcs.push_back(reinterpret_cast<CUdeviceptr>(host.data() + off));
    sizes.push_back(piece);
  }
  CUmemcpyAttributes attr{};
  attr.srcAccessOrder = CU_MEMCPY_SRC_ACCESS_ORDER_STREAM;
  attr.srcLocHint.type = CU_MEM_LOCATION_TYPE_HOST;
  attr.dstLocHint.type = CU_MEM_LOCATION_TYPE_DEVICE;
  size_t attr_idx = 0;
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CU_OK(cuMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), dsts.size(), &attr, &attr_idx, 1, s));
  CU_OK(cuStreamSynchronize(s));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(host.size());
  EXPECT_EQ(host_hash(host.data(), host.size()), device_hash(w, host.size()));
  cuStreamDestroy(s);
  cuMemFree(w);
}

// The CUDA 12.8 ABI of cuMemcpyBatchAsync (failIdx before the stream): what a
// program built for CUDA 12.8-12.9 gets from cuGetProcAddress, and all a
// 12.8-12.9 driver has. Host copies fill weights; a batch copying out of a
// compressed weight reads it staged.
// cudaMemcpy(..., cudaMemcpyDefault) from host memory reaches the driver as
// a unified copy (cuMemcpy, cuMemcpyAsync): it fills weights as
// cuMemcpyHtoD does, so they are tagged and compressed (until 2026-12-07 they
// stayed resident: nothing saved on a model loaded that way).
TEST(UnseenWrites, UnifiedCopiesFromTheHostFillWeights) {
  const auto a = weights(4 * kMiB, 42), b = weights(6 * kMiB, 43);
  CUdeviceptr da = alloc(a.size()), db = alloc(b.size());
  CU_OK(cuMemcpy(da, reinterpret_cast<CUdeviceptr>(a.data()), a.size()));
  CUstream s = nullptr;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CU_OK(cuMemcpyAsync(db, reinterpret_cast<CUdeviceptr>(b.data()), b.size(), s));
  CU_OK(cuStreamSynchronize(s));
  CU_OK(cuStreamDestroy(s));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(a.size() + b.size());
  EXPECT_EQ(host_hash(a.data(), a.size()), device_hash(da, a.size()));
  EXPECT_EQ(host_hash(b.data(), b.size()), device_hash(db, b.size()));
  // Back to the host through the same calls: the bytes as written.
  std::vector<uint8_t> back(b.size());
  CU_OK(cuMemcpy(reinterpret_cast<CUdeviceptr>(back.data()), db, back.size()));
  EXPECT_TRUE(back == b);
  cuMemFree(da);
  cuMemFree(db);
}

TEST(UnseenWrites, BatchedCopiesThroughTheCuda128Abi) {
  using BatchV1 = CUresult(CUDAAPI*)(CUdeviceptr*, CUdeviceptr*, size_t*, size_t, CUmemcpyAttributes*, size_t*,
                                     size_t, size_t*, CUstream);
  void* fn = nullptr;
  CUdriverProcAddressQueryResult found{};
  CU_OK(cuGetProcAddress("cuMemcpyBatchAsync", &fn, 12080, CU_GET_PROC_ADDRESS_DEFAULT, &found));
  ASSERT_NE(fn, nullptr);
  const auto batch = reinterpret_cast<BatchV1>(fn);
  const size_t piece = size_t{2} << 20;
  auto host = weights(4 * piece, 39);
  CUdeviceptr w = alloc(host.size()), out = alloc(host.size());
  std::vector<CUdeviceptr> dsts, srcs, outs;
  std::vector<size_t> sizes;
  for (size_t off = 0; off < host.size(); off += piece) {
    dsts.push_back(w + off);
    srcs.push_back(reinterpret_cast<CUdeviceptr>(host.data() + off));
    outs.push_back(out + off);
    sizes.push_back(piece);
  }
  CUmemcpyAttributes attr{};
  attr.srcAccessOrder = CU_MEMCPY_SRC_ACCESS_ORDER_STREAM;
  attr.srcLocHint.type = CU_MEM_LOCATION_TYPE_HOST;
  attr.dstLocHint.type = CU_MEM_LOCATION_TYPE_DEVICE;
  size_t attr_idx = 0, fail = 0;
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CU_OK(batch(dsts.data(), srcs.data(), sizes.data(), dsts.size(), &attr, &attr_idx, 1, &fail, s));
  CU_OK(cuStreamSynchronize(s));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(host.size());
  // Out of a weight the ordinary path loaded (and compressed), apart from
  // the tagging above: the batch must read it staged.
  auto host2 = weights(4 * piece, 40);
  CUdeviceptr w2 = alloc(host2.size());
  CU_OK(cuMemcpyHtoD(w2, host2.data(), host2.size()));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(host.size() + host2.size());
  for (size_t k = 0; k < dsts.size(); ++k) dsts[k] = w2 + k * piece;
  attr.srcLocHint.type = CU_MEM_LOCATION_TYPE_DEVICE;
  CU_OK(batch(outs.data(), dsts.data(), sizes.data(), dsts.size(), &attr, &attr_idx, 1, &fail, s));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(host_hash(host2.data(), host2.size()), device_hash(out, host2.size()));
  EXPECT_EQ(host_hash(host.data(), host.size()), device_hash(w, host.size()));
  cuStreamDestroy(s);
  for (CUdeviceptr p : {out, w, w2}) cuMemFree(p);
}

// One cuMemcpy3DBatchAsync operation between two pointers (element size 1):
// `extent` bytes x rows x layers; row and layer lengths 0 mean packed.
CUDA_MEMCPY3D_BATCH_OP op3d(CUdeviceptr dst, size_t dst_row, CUdeviceptr src, size_t src_row, CUextent3D extent) {
  CUDA_MEMCPY3D_BATCH_OP op{};
  op.src.type = op.dst.type = CU_MEMCPY_OPERAND_TYPE_POINTER;
  op.src.op.ptr.ptr = src;
  op.src.op.ptr.rowLength = src_row;
  op.dst.op.ptr.ptr = dst;
  op.dst.op.ptr.rowLength = dst_row;
  op.extent = extent;
  op.srcAccessOrder = CU_MEMCPY_SRC_ACCESS_ORDER_STREAM;
  return op;
}

// cuMemcpy3DBatchAsync (CUDA 12.8+), both ABIs. Packed host-to-device
// operations fill weights (tagged and compressed, as after
// cuMemcpyHtoDAsync); a pitched 2D window copied out of a compressed weight
// (rows 1 MiB apart across its four units) reads it staged, through the
// CUDA 12.8 ABI (failIdx) that cuGetProcAddress gives programs built for
// 12.8-12.9. Before the shim hooked it, the window's copy read unmapped pages.
TEST(UnseenWrites, Batched3DCopiesFillAndReadWeights) {
  const size_t piece = size_t{2} << 20;
  auto host = weights(4 * piece, 41);
  CUdeviceptr w = alloc(host.size());
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  // Two packed operations: a 2 MiB line, then 6 MiB as 3 layers of 2 rows of 1 MiB.
  std::vector<CUDA_MEMCPY3D_BATCH_OP> fill = {
      op3d(w, 0, reinterpret_cast<CUdeviceptr>(host.data()), 0, {piece, 1, 1}),
      op3d(w + piece, 0, reinterpret_cast<CUdeviceptr>(host.data() + piece), 0, {piece / 2, 2, 3})};
  CU_OK(cuMemcpy3DBatchAsync(fill.size(), fill.data(), 0, s));
  CU_OK(cuStreamSynchronize(s));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(host.size());
  EXPECT_EQ(host_hash(host.data(), host.size()), device_hash(w, host.size()));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(host.size());

  using Batch3DV1 = CUresult(CUDAAPI*)(size_t, CUDA_MEMCPY3D_BATCH_OP*, size_t*, unsigned long long, CUstream);
  void* fn = nullptr;
  CUdriverProcAddressQueryResult found{};
  CU_OK(cuGetProcAddress("cuMemcpy3DBatchAsync", &fn, 12080, CU_GET_PROC_ADDRESS_DEFAULT, &found));
  ASSERT_NE(fn, nullptr);
  const auto batch = reinterpret_cast<Batch3DV1>(fn);
  // 8 rows of 4 KiB, 1 MiB apart, from 12 KiB into the weight, packed into `out`.
  const size_t width = 4096, rows = 8, row_pitch = size_t{1} << 20, start = 3 * 4096;
  CUdeviceptr out = alloc(width * rows);
  CUDA_MEMCPY3D_BATCH_OP window = op3d(out, 0, w + start, row_pitch, {width, rows, 1});
  size_t fail = 0;
  CU_OK(batch(1, &window, &fail, 0, s));
  CU_OK(cuStreamSynchronize(s));
  std::vector<uint8_t> expect(width * rows);
  for (size_t r = 0; r < rows; ++r)
    std::memcpy(expect.data() + r * width, host.data() + start + r * row_pitch, width);
  EXPECT_EQ(host_hash(expect.data(), expect.size()), device_hash(out, expect.size()));
  // A malformed operation (an empty extent) is refused whole, as by the
  // driver, and nothing of the weight is lost.
  CUDA_MEMCPY3D_BATCH_OP empty = op3d(out, 0, w, 0, {0, 1, 1});
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuMemcpy3DBatchAsync(1, &empty, 0, s));
  EXPECT_EQ(host_hash(host.data(), host.size()), device_hash(w, host.size()));
  cuStreamDestroy(s);
  for (CUdeviceptr p : {out, w}) cuMemFree(p);
}

}  // namespace
}  // namespace fw

namespace fw {
namespace {

CUtexObject linear_texture(CUdeviceptr p, size_t bytes) {
  CUDA_RESOURCE_DESC res{};
  res.resType = CU_RESOURCE_TYPE_LINEAR;
  res.res.linear.devPtr = p;
  res.res.linear.format = CU_AD_FORMAT_UNSIGNED_INT8;
  res.res.linear.numChannels = 1;
  res.res.linear.sizeInBytes = bytes;
  CUDA_TEXTURE_DESC desc{};
  desc.flags = CU_TRSF_READ_AS_INTEGER;
  CUtexObject tex = 0;
  EXPECT_EQ(cuTexObjectCreate(&tex, &res, &desc, nullptr), CUDA_SUCCESS);
  return tex;
}

// A kernel that samples a texture over a weight gets a 64-bit object, not
// the weight's address: no scan of its parameters can find the weight. Under
// a 4 MiB budget (frameworks-texture) reads of two other weights evict
// whatever is idle; the textured weight must stay mapped while its object
// lives (without the pin the second sample meets unmapped pages), and may be
// compressed again once the object is destroyed.
TEST(Texture, LinearTextureOverACompressedWeight) {
  Weight w(4 * kMiB, 41), o1(4 * kMiB, 42), o2(4 * kMiB, 43);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(12 * kMiB);
  const CUtexObject tex = linear_texture(w.dev, w.host.size());
  ASSERT_NE(tex, 0u);
  static CUdeviceptr out = alloc(64);
  uint64_t n = w.host.size();
  EXPECT_EQ(w.hash(), launch_and_read(Env::get().fn("sum_tex"), {const_cast<CUtexObject*>(&tex), &n, &out}, out));
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(o1.hash(), device_hash(o1.dev, o1.host.size()));
    EXPECT_EQ(o2.hash(), device_hash(o2.dev, o2.host.size()));
    Env::get().flush();
    CUresult r = CUDA_SUCCESS;
    EXPECT_EQ(w.hash(), launch_and_read(Env::get().fn("sum_tex"), {const_cast<CUtexObject*>(&tex), &n, &out}, out,
                                        nullptr, &r));
    ASSERT_EQ(r, CUDA_SUCCESS) << "the textured weight was not mapped when sampled";
  }
  ASSERT_EQ(cuTexObjectDestroy(tex), CUDA_SUCCESS);
  if (Env::get().neuzip()) {
    // Unpinned: the budget takes it back as the other weights are read.
    const uint64_t before = Env::get().stats().recompressions + Env::get().stats().drops;
    EXPECT_EQ(o1.hash(), device_hash(o1.dev, o1.host.size()));
    EXPECT_EQ(o2.hash(), device_hash(o2.dev, o2.host.size()));
    EXPECT_GT(Env::get().stats().recompressions + Env::get().stats().drops, before)
        << "nothing was evicted: the textured weight stayed pinned after its object was destroyed";
  }
  // Read directly, the weight is still right.
  EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
}

// A pitch-2D resource covers height x pitch bytes from its address.
TEST(Texture, Pitch2DTextureOverACompressedWeight) {
  Weight w(4 * kMiB, 44), o1(4 * kMiB, 45), o2(4 * kMiB, 46);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(12 * kMiB);
  CUDA_RESOURCE_DESC res{};
  res.resType = CU_RESOURCE_TYPE_PITCH2D;
  res.res.pitch2D.devPtr = w.dev;
  res.res.pitch2D.format = CU_AD_FORMAT_UNSIGNED_INT8;
  res.res.pitch2D.numChannels = 1;
  res.res.pitch2D.pitchInBytes = 4096;
  res.res.pitch2D.width = 4096;
  res.res.pitch2D.height = w.host.size() / 4096;
  CUDA_TEXTURE_DESC desc{};
  CUtexObject tex = 0;
  CU_OK(cuTexObjectCreate(&tex, &res, &desc, nullptr));
  static CUdeviceptr out = alloc(64);
  uint64_t n = w.host.size();
  EXPECT_EQ(o1.hash(), device_hash(o1.dev, o1.host.size()));
  EXPECT_EQ(o2.hash(), device_hash(o2.dev, o2.host.size()));
  Env::get().flush();
  CUresult r = CUDA_SUCCESS;
  EXPECT_EQ(w.hash(), launch_and_read(Env::get().fn("sum_tex"), {&tex, &n, &out}, out, nullptr, &r));
  EXPECT_EQ(r, CUDA_SUCCESS);
  CU_OK(cuTexObjectDestroy(tex));
}

}  // namespace
}  // namespace fw
