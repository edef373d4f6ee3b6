// nccl_hooks_test.cpp: NCCL's calls on buffers neuzip holds compressed, with
// the test NCCL (linked directly, as PyTorch links libnccl.so.2, so under
// LD_PRELOAD the calls meet neuzip's definitions by symbol interposition).
// Each case runs without neuzip (a valid program) and with it, under a 2 MiB
// staging budget so that every staging evicts what is not held; under neuzip
// each case first checks that its weights are really compressed.
#include <cuda.h>
#include <gtest/gtest.h>

#include <vector>

#include "../frameworks/fw_env.h"
#include "nccl_abi.h"

extern "C" {
ncclResult_t ncclGetUniqueId(ncclUniqueId* id);
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclAllReduce(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, CUstream);
ncclResult_t ncclBroadcast(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, CUstream);
ncclResult_t ncclSend(const void*, size_t, ncclDataType_t, int, ncclComm_t, CUstream);
ncclResult_t ncclRecv(void*, size_t, ncclDataType_t, int, ncclComm_t, CUstream);
ncclResult_t ncclGroupStart();
ncclResult_t ncclGroupEnd();
ncclResult_t ncclCommRegister(const ncclComm_t, void*, size_t, void**);
ncclResult_t ncclCommDeregister(const ncclComm_t, void*);
ncclResult_t ncclMemAlloc(void**, size_t);
ncclResult_t ncclMemFree(void*);
ncclResult_t fake_nccl_touch_registered(ncclComm_t, CUstream);  // tests/nccl only
}

namespace {

using fw::Env;
using fw::Weight;

constexpr size_t kBytes = size_t{4} << 20;

void* vp(CUdeviceptr p) { return reinterpret_cast<void*>(p); }

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    Env::get();
    ncclUniqueId id;
    ASSERT_EQ(ncclSuccess, ncclGetUniqueId(&id));
    ASSERT_EQ(ncclSuccess, ncclCommInitRank(&comm_, 1, id, 0));
    ASSERT_EQ(CUDA_SUCCESS, cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING));
  }
  void TearDown() override {
    cuStreamSynchronize(stream_);
    cuStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }
  // The collective's kernel ran without a fault: the stream completes.
  void finish() { CU_OK(cuStreamSynchronize(stream_)); }

  ncclComm_t comm_ = nullptr;
  CUstream stream_ = nullptr;
};

// DDP's broadcast of a parameter just loaded (and compressed).
TEST_F(Nccl, BroadcastReadsACompressedWeight) {
  Weight w(kBytes, 1);
  const CUdeviceptr out = fw::alloc(kBytes);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(kBytes);
  ASSERT_EQ(ncclSuccess, ncclBroadcast(vp(w.dev), vp(out), kBytes, ncclUint8, 0, comm_, stream_));
  finish();
  EXPECT_EQ(w.hash(), fw::device_hash(out, kBytes));
  cuMemFree(out);
}

// NCCL enqueues a group's work at ncclGroupEnd: the ranges its first calls
// staged must stay mapped while its later calls stage more (2 MiB budget).
TEST_F(Nccl, GroupKeepsItsRangesStagedUntilItsEnd) {
  std::vector<std::unique_ptr<Weight>> in;
  std::vector<CUdeviceptr> out;
  for (uint32_t i = 0; i < 3; ++i) {
    in.push_back(std::make_unique<Weight>(kBytes, 10 + i));
    out.push_back(fw::alloc(kBytes));
  }
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(3 * kBytes);
  ASSERT_EQ(ncclSuccess, ncclGroupStart());
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(ncclSuccess,
              ncclAllReduce(vp(in[i]->dev), vp(out[i]), kBytes / 2, ncclBfloat16, ncclSum, comm_, stream_));
  }
  ASSERT_EQ(ncclSuccess, ncclGroupEnd());
  finish();
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(in[i]->hash(), fw::device_hash(out[i], kBytes)) << "weight " << i;
    cuMemFree(out[i]);
  }
}

// A gradient all-reduce writes into a compressed range: once evicted, it must
// be encoded again (it changed), never dropped.
TEST_F(Nccl, ARangeACollectiveWroteIsRecompressed) {
  Weight target(kBytes, 20);
  Weight other(kBytes, 21);
  const CUdeviceptr src = fw::alloc(kBytes);
  CU_OK(cuMemsetD8(src, 0x3c, kBytes));
  std::vector<uint8_t> expected(kBytes, 0x3c);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kBytes);
  const uint64_t recompressed_before = Env::get().neuzip() ? Env::get().stats().recompressions : 0;
  ASSERT_EQ(ncclSuccess, ncclAllReduce(vp(src), vp(target.dev), kBytes / 4, ncclFloat32, ncclSum, comm_, stream_));
  finish();
  // Staging the other weight under the budget evicts the written one.
  EXPECT_EQ(other.hash(), fw::device_hash(other.dev, kBytes));
  EXPECT_EQ(fw::host_hash(expected.data(), kBytes), fw::device_hash(target.dev, kBytes));
  if (Env::get().neuzip()) {
    EXPECT_GT(Env::get().stats().recompressions, recompressed_before);
  }
  cuMemFree(src);
}

// Send and receive between compressed ranges (one rank: to itself, in a group).
TEST_F(Nccl, SendAndReceiveInAGroup) {
  Weight from(kBytes, 30);
  Weight to(kBytes, 31);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kBytes);
  ASSERT_EQ(ncclSuccess, ncclGroupStart());
  ASSERT_EQ(ncclSuccess, ncclSend(vp(from.dev), kBytes / 2, ncclFloat16, 0, comm_, stream_));
  ASSERT_EQ(ncclSuccess, ncclRecv(vp(to.dev), kBytes / 2, ncclFloat16, 0, comm_, stream_));
  ASSERT_EQ(ncclSuccess, ncclGroupEnd());
  finish();
  EXPECT_EQ(from.hash(), fw::device_hash(to.dev, kBytes));
}

// A registered buffer may be read by NCCL (its peers) outside any call we
// see: registration stages it and keeps it staged until deregistration.
TEST_F(Nccl, ARegisteredBufferStaysMapped) {
  Weight reg(kBytes, 40);
  Weight a(kBytes, 41), b(kBytes, 42);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(3 * kBytes);
  void* handle = nullptr;
  ASSERT_EQ(ncclSuccess, ncclCommRegister(comm_, vp(reg.dev), kBytes, &handle));
  // Stage others under the budget: nothing may evict the registered buffer.
  EXPECT_EQ(a.hash(), fw::device_hash(a.dev, kBytes));
  EXPECT_EQ(b.hash(), fw::device_hash(b.dev, kBytes));
  Env::get().flush();
  ASSERT_EQ(ncclSuccess, fake_nccl_touch_registered(comm_, stream_));
  finish();
  ASSERT_EQ(ncclSuccess, ncclCommDeregister(comm_, handle));
  EXPECT_EQ(reg.hash(), fw::device_hash(reg.dev, kBytes));
}

// A collective captured into a CUDA graph (PyTorch's CUDA graphs capture
// NCCL calls): its ranges stay pinned for the graph, so a replay after other
// stagings under the budget still finds them mapped.
TEST_F(Nccl, ACapturedCollectiveReplaysOnPinnedRanges) {
  Weight w(kBytes, 60);
  Weight other(kBytes, 61);
  const CUdeviceptr out = fw::alloc(kBytes);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kBytes);
  CU_OK(cuStreamBeginCapture(stream_, CU_STREAM_CAPTURE_MODE_GLOBAL));
  ASSERT_EQ(ncclSuccess, ncclBroadcast(vp(w.dev), vp(out), kBytes, ncclUint8, 0, comm_, stream_));
  CUgraph graph = nullptr;
  CU_OK(cuStreamEndCapture(stream_, &graph));
  CUgraphExec exec = nullptr;
  CU_OK(cuGraphInstantiate(&exec, graph, 0));
  EXPECT_EQ(other.hash(), fw::device_hash(other.dev, kBytes));  // stages over the budget
  CU_OK(cuMemsetD8(out, 0, kBytes));
  CU_OK(cuGraphLaunch(exec, stream_));
  finish();
  EXPECT_EQ(w.hash(), fw::device_hash(out, kBytes));
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(graph));
  cuMemFree(out);
}

// ncclMemAlloc memory is NCCL's for its life: never compressed, even when
// filled from the host like a weight.
TEST_F(Nccl, NcclMemAllocMemoryIsNeverCompressed) {
  void* p = nullptr;
  ASSERT_EQ(ncclSuccess, ncclMemAlloc(&p, kBytes));
  const uint64_t before = Env::get().neuzip() ? Env::get().stats().bytes_original_compressed : 0;
  const std::vector<uint8_t> data = fw::weights(kBytes, 50);
  fw::upload(reinterpret_cast<CUdeviceptr>(p), data, kBytes);
  Env::get().flush();
  if (Env::get().neuzip()) {
    EXPECT_EQ(before, Env::get().stats().bytes_original_compressed);
  }
  void* handle = nullptr;
  ASSERT_EQ(ncclSuccess, ncclCommRegister(comm_, p, kBytes, &handle));
  ASSERT_EQ(ncclSuccess, fake_nccl_touch_registered(comm_, stream_));
  finish();
  ASSERT_EQ(ncclSuccess, ncclCommDeregister(comm_, handle));
  EXPECT_EQ(fw::host_hash(data.data(), kBytes), fw::device_hash(reinterpret_cast<CUdeviceptr>(p), kBytes));
  ASSERT_EQ(ncclSuccess, ncclMemFree(p));
}

}  // namespace
