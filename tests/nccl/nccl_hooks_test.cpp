// nccl_hooks_test.cpp: NCCL's calls on buffers neuzip holds compressed, with
// the test NCCL (linked directly, as PyTorch links libnccl.so.2, so under
// LD_PRELOAD the calls meet neuzip's definitions by symbol interposition).
// Each case runs without neuzip (a valid program) and with it, under a 2 MiB
// staging budget so that every staging evicts what is not held; under neuzip
// each case first checks that its weights are really compressed.
#include <cuda.h>
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "../frameworks/fw_env.h"
#include "nccl_abi.h"
#include "work.h"

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
ncclResult_t ncclGroupSimulateEnd(ncclSimInfo_t*);  // NCCL 2.22 and later
ncclResult_t ncclCommRegister(const ncclComm_t, void*, size_t, void**);
ncclResult_t ncclCommDeregister(const ncclComm_t, void*);
ncclResult_t ncclMemAlloc(void**, size_t);
ncclResult_t ncclMemFree(void*);
ncclResult_t fake_nccl_touch_registered(ncclComm_t, CUstream);  // tests/nccl only
// NCCL 2.28 and later.
ncclResult_t ncclAlltoAll(const void*, void*, size_t, ncclDataType_t, ncclComm_t, CUstream);
ncclResult_t ncclGather(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, CUstream);
ncclResult_t ncclScatter(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, CUstream);
ncclResult_t ncclAllReduceConfig(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, CUstream,
                                 const ncclCollConfig_t*);
ncclResult_t ncclAlltoAllConfig(const void*, void*, size_t, ncclDataType_t, ncclComm_t, CUstream,
                                const ncclCollConfig_t*);
ncclResult_t ncclCommWindowRegister(ncclComm_t, void*, size_t, ncclWindow_t*, int);
ncclResult_t ncclCommWindowDeregister(ncclComm_t, ncclWindow_t);
ncclResult_t ncclPutSignal(const void*, size_t, ncclDataType_t, int, ncclWindow_t, size_t, int, int, unsigned int,
                           ncclComm_t, CUstream);
ncclResult_t ncclSignal(int, int, int, unsigned int, ncclComm_t, CUstream);
ncclResult_t ncclWaitSignal(int, ncclWaitSignalDesc_t*, ncclComm_t, CUstream);
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
  // A communicator of `n` ranks: this process is rank 0, the others mirror it
  // (tests/nccl/README.md), so that per-rank extents matter.
  ncclComm_t ranks(int n) {
    ncclUniqueId id;
    EXPECT_EQ(ncclSuccess, ncclGetUniqueId(&id));
    ncclComm_t c = nullptr;
    EXPECT_EQ(ncclSuccess, ncclCommInitRank(&c, n, id, 0));
    return c;
  }
  uint64_t decompressions() const { return Env::get().neuzip() ? Env::get().stats().decompressions : 0; }

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

// ncclGroupSimulateEnd ends a group without running it (a planner pricing a
// schedule). neuzip's group must end with it: unhooked, it stayed open, and
// every later collective joined it, its ranges held staged for good (here
// the weight and each of the others, past the 2 MiB budget).
TEST_F(Nccl, ASimulatedGroupEndsTheGroupAndRunsNothing) {
  Weight w(kBytes, 40);
  std::vector<std::unique_ptr<Weight>> others;
  for (uint32_t i = 0; i < 3; ++i) others.push_back(std::make_unique<Weight>(kBytes, 41 + i));
  const CUdeviceptr out = fw::alloc(kBytes);
  CU_OK(cuMemsetD8(out, 0x5e, kBytes));
  std::vector<uint8_t> untouched(kBytes, 0x5e);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kBytes);
  ASSERT_EQ(ncclSuccess, ncclGroupStart());
  ASSERT_EQ(ncclSuccess, ncclBroadcast(vp(w.dev), vp(out), kBytes, ncclUint8, 0, comm_, stream_));
  ncclSimInfo_t info{sizeof(ncclSimInfo_t), 0x74685283u, 22200u, 0.0f};
  ASSERT_EQ(ncclSuccess, ncclGroupSimulateEnd(&info));
  EXPECT_GT(info.estimatedTime, 0.0f);
  finish();
  EXPECT_EQ(fw::host_hash(untouched.data(), kBytes), fw::device_hash(out, kBytes)) << "the simulated group ran";
  for (const auto& o : others) {
    ASSERT_EQ(ncclSuccess, ncclBroadcast(vp(o->dev), vp(out), kBytes, ncclUint8, 0, comm_, stream_));
    finish();
    EXPECT_EQ(o->hash(), fw::device_hash(out, kBytes));
  }
  EXPECT_EQ(w.hash(), fw::device_hash(w.dev, kBytes));
  if (Env::get().neuzip()) {
    EXPECT_LE(Env::get().stats().staging_bytes, uint64_t{kBytes})
        << "ranges of collectives after the simulated group stayed staged";
  }
  cuMemFree(out);
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

// NCCL 2.28's all-to-all (PyTorch's equal-split all_to_all_single): each
// rank reads its whole sendbuff (chunk j goes to rank j) and writes its whole
// recvbuff, nranks x count elements each. 4 ranks of 1 MiB chunks over two
// 2 MiB units per buffer: staging `count` bytes alone leaves a unit of each
// compressed, and the kernel faults there.
TEST_F(Nccl, AllToAllReadsAndWritesEveryRanksChunk) {
  ncclComm_t four = ranks(4);
  Weight send(kBytes, 70), recv(kBytes, 71);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kBytes);
  const size_t chunk = kBytes / 4;
  ASSERT_EQ(ncclSuccess, ncclAlltoAll(vp(send.dev), vp(recv.dev), chunk, ncclUint8, four, stream_));
  finish();
  std::vector<uint8_t> expected(kBytes);  // every mirror sends us its chunk 0, which is ours
  for (size_t r = 0; r < 4; ++r) std::copy_n(send.host.begin(), chunk, expected.begin() + r * chunk);
  EXPECT_EQ(fw::host_hash(expected.data(), kBytes), fw::device_hash(recv.dev, kBytes));
  EXPECT_EQ(send.hash(), fw::device_hash(send.dev, kBytes));
  ncclCommDestroy(four);
}

// Gather writes nranks x count elements on the root only; elsewhere recvbuff
// is not NCCL's to touch, and neuzip must not stage it either.
TEST_F(Nccl, GatherWritesEveryChunkOnTheRootOnly) {
  ncclComm_t four = ranks(4);
  const size_t chunk = kBytes / 4;
  const CUdeviceptr send = fw::alloc(chunk);  // filled on the device: not a weight
  CU_OK(cuMemsetD8(send, 0x21, chunk));
  Weight recv(kBytes, 73), other(kBytes, 86);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kBytes);
  const uint64_t before = decompressions();
  ASSERT_EQ(ncclSuccess, ncclGather(vp(send), vp(recv.dev), chunk, ncclUint8, 2, four, stream_));  // root 2
  finish();
  EXPECT_EQ(before, decompressions()) << "recvbuff staged on a rank that is not the root";
  EXPECT_EQ(recv.hash(), fw::device_hash(recv.dev, kBytes)) << "a rank that is not the root wrote recvbuff";
  EXPECT_EQ(other.hash(), fw::device_hash(other.dev, kBytes));  // staged under the budget: recvbuff goes
  ASSERT_EQ(ncclSuccess, ncclGather(vp(send), vp(recv.dev), chunk, ncclUint8, 0, four, stream_));  // root: us
  finish();
  const std::vector<uint8_t> expected(kBytes, 0x21);
  EXPECT_EQ(fw::host_hash(expected.data(), kBytes), fw::device_hash(recv.dev, kBytes));
  cuMemFree(send);
  ncclCommDestroy(four);
}

// Scatter reads nranks x count elements of the root's sendbuff; elsewhere
// sendbuff is not used.
TEST_F(Nccl, ScatterReadsEveryChunkOnTheRoot) {
  ncclComm_t four = ranks(4);
  Weight send(kBytes, 74);
  const CUdeviceptr recv = fw::alloc(kBytes / 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(kBytes);
  const size_t chunk = kBytes / 4;
  ASSERT_EQ(ncclSuccess, ncclScatter(vp(send.dev), vp(recv), chunk, ncclUint8, 0, four, stream_));
  finish();
  EXPECT_EQ(fw::host_hash(send.host.data(), chunk), fw::device_hash(recv, chunk));
  ASSERT_EQ(ncclSuccess, ncclScatter(vp(send.dev), vp(recv), chunk, ncclUint8, 3, four, stream_));  // root 3
  finish();
  const std::vector<uint8_t> from_root(chunk, fake_nccl::kScatteredByte);
  EXPECT_EQ(fw::host_hash(from_root.data(), chunk), fw::device_hash(recv, chunk));
  cuMemFree(recv);
  ncclCommDestroy(four);
}

// The nccl*Config forms take a trailing per-call configuration (NULL: the
// plain call's behaviour) and move the same bytes.
TEST_F(Nccl, ConfigFormsStageWhatThePlainOnesDo) {
  ncclComm_t four = ranks(4);
  Weight a(kBytes, 75), b(kBytes, 76);
  const CUdeviceptr out = fw::alloc(kBytes);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kBytes);
  ASSERT_EQ(ncclSuccess, ncclAllReduceConfig(vp(a.dev), vp(out), kBytes, ncclUint8, ncclSum, comm_, stream_, nullptr));
  finish();
  EXPECT_EQ(a.hash(), fw::device_hash(out, kBytes));
  const size_t chunk = kBytes / 4;
  ASSERT_EQ(ncclSuccess, ncclAlltoAllConfig(vp(b.dev), vp(out), chunk, ncclUint8, four, stream_, nullptr));
  finish();
  std::vector<uint8_t> expected(kBytes);
  for (size_t r = 0; r < 4; ++r) std::copy_n(b.host.begin(), chunk, expected.begin() + r * chunk);
  EXPECT_EQ(fw::host_hash(expected.data(), kBytes), fw::device_hash(out, kBytes));
  cuMemFree(out);
  ncclCommDestroy(four);
}

// A window (symmetric memory) is read and written by peers between calls, as
// a registered buffer is; a one-sided put reads its local buffer.
TEST_F(Nccl, AWindowStaysMappedAndAPutReadsItsLocalBuffer) {
  Weight window(kBytes, 77), local(kBytes / 2, 78);
  Weight a(kBytes, 79), b(kBytes, 80);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(3 * kBytes);
  ncclWindow_t win = nullptr;
  ASSERT_EQ(ncclSuccess, ncclCommWindowRegister(comm_, vp(window.dev), kBytes, &win, 0));
  EXPECT_EQ(a.hash(), fw::device_hash(a.dev, kBytes));  // others staged under the budget
  EXPECT_EQ(b.hash(), fw::device_hash(b.dev, kBytes));
  Env::get().flush();
  ASSERT_EQ(ncclSuccess, fake_nccl_touch_registered(comm_, stream_));  // a peer reads the window
  finish();
  Env::get().flush();
  ASSERT_EQ(ncclSuccess, ncclPutSignal(vp(local.dev), kBytes / 2, ncclUint8, 0, win, kBytes / 2, 0, 0, 0, comm_,
                                       stream_));
  ncclWaitSignalDesc_t wait{1, 0, 0, 0};
  ASSERT_EQ(ncclSuccess, ncclWaitSignal(1, &wait, comm_, stream_));
  finish();
  ASSERT_EQ(ncclSuccess, ncclCommWindowDeregister(comm_, win));
  std::vector<uint8_t> expected = window.host;
  std::copy(local.host.begin(), local.host.end(), expected.begin() + kBytes / 2);
  EXPECT_EQ(fw::host_hash(expected.data(), kBytes), fw::device_hash(window.dev, kBytes));
}

// A stream that waits for a peer's signal may wait for this rank's later
// work: a weight read behind the wait is neither waited for by evictions nor
// handed over (as behind cuStreamWaitValue32, tests/frameworks). In a group
// the wait is enqueued at the group's end, and marked then.
void weight_read_behind_a_signal_wait(ncclComm_t comm, bool in_group) {
  Weight w(kBytes, 81);
  std::vector<std::unique_ptr<Weight>> others;
  for (uint32_t i = 0; i < 3; ++i) others.push_back(std::make_unique<Weight>(kBytes, 82 + i));
  const CUdeviceptr out = fw::alloc(64);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kBytes);
  CUstream waiting = nullptr, other = nullptr;
  CU_OK(cuStreamCreate(&waiting, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamCreate(&other, CU_STREAM_NON_BLOCKING));
  const uint64_t stalled = Env::get().neuzip() ? Env::get().stats().stalled_waits : 0;
  ncclWaitSignalDesc_t wait{1, 0, 1, 0};
  if (in_group) ASSERT_EQ(ncclSuccess, ncclGroupStart());
  ASSERT_EQ(ncclSuccess, ncclWaitSignal(1, &wait, comm, waiting));
  if (in_group) ASSERT_EQ(ncclSuccess, ncclGroupEnd());
  // Larger than the 2 MiB budget: staged unit by unit, each store given up
  // once its decode (queued behind the wait) completed.
  fw::queue_sum(w.dev, kBytes, out, waiting);
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 2; ++round)
    for (const auto& x : others) EXPECT_EQ(x->hash(), fw::device_hash(x->dev, kBytes));
  if (Env::get().neuzip()) {
    EXPECT_EQ(stalled, Env::get().stats().stalled_waits)
        << "an eviction waited NEUZIP_WAIT_PATIENCE_MS for the stream behind the signal";
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(waiting)) << "the wait did not hold its stream";
  ASSERT_EQ(ncclSuccess, ncclSignal(0, 1, 0, 0, comm, other));
  CU_OK(cuStreamSynchronize(waiting));
  EXPECT_EQ(w.hash(), fw::read_word(out));
  CU_OK(cuStreamDestroy(waiting));
  CU_OK(cuStreamDestroy(other));
  cuMemFree(out);
}

TEST_F(Nccl, AStreamWaitingForASignalIsNotWaitedFor) { weight_read_behind_a_signal_wait(comm_, false); }

TEST_F(Nccl, AStreamWaitingForASignalInAGroupIsNotWaitedFor) { weight_read_behind_a_signal_wait(comm_, true); }

}  // namespace
