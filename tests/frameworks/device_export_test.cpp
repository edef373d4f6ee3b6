// Device memory that something outside the program's streams reads and
// writes.
//
// DmaBuf.*: a range exported as a dma-buf (cuMemGetHandleForAddressRange),
// the way NCCL's network plugins, UCX and libfabric register GPU memory with
// a NIC and cuFile with a storage driver. The NIC then reads and writes the
// pages the range had at the export, at any time. Under neuzip a weight is
// compressed (no pages: the driver refuses the export) or staged (pages that
// an eviction gives back: the NIC's writes would never reach the program).
// The simulator's nzsim_dmabuf_io plays the NIC.
//
// StreamWaits.*: cuStreamWaitValue32/64 poll a word of device memory until
// it meets a condition (a producer stream signalling a consumer stream): the
// word must be mapped while its stream waits, for as long as it waits.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fw_env.h"
#include "nzsim.h"

namespace fw {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// What a NIC does through a dma-buf; false if the simulator refuses.
bool nic_io(int fd, size_t offset, void* data, size_t bytes, bool write) {
  static auto io = reinterpret_cast<nzsim_dmabuf_io_fn>(dlsym(RTLD_DEFAULT, "nzsim_dmabuf_io"));
  return io != nullptr && io(fd, offset, data, bytes, write ? 1 : 0) == 0;
}

std::vector<uint8_t> nic_read(int fd, size_t offset, size_t bytes) {
  std::vector<uint8_t> out(bytes);
  EXPECT_TRUE(nic_io(fd, offset, out.data(), bytes, false)) << "the NIC cannot read the dma-buf";
  return out;
}

// Other weights read one after another, each larger than the 4 MiB budget's
// share left: everything staged and idle is evicted meanwhile.
void pressure(uint32_t seed) {
  for (uint32_t i = 0; i < 3; ++i) {
    Weight other(4 * kMiB, seed + i);
    Env::get().flush();
    EXPECT_EQ(other.hash(), device_hash(other.dev, other.host.size()));
  }
}

int export_dmabuf(CUdeviceptr p, size_t bytes, CUresult* result = nullptr) {
  int fd = -1;
  const CUresult r = cuMemGetHandleForAddressRange(&fd, p, bytes, CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, 0);
  if (result) *result = r;
  else EXPECT_EQ(CUDA_SUCCESS, r) << error_name(r);
  return r == CUDA_SUCCESS ? fd : -1;
}

// Sets a 32-bit device flag to 1 when told, or after `limit` at the latest:
// a test whose code under test waits for the flag's stream then fails its
// time check instead of hanging the run.
class Watchdog {
 public:
  Watchdog(CUdeviceptr flag, std::chrono::seconds limit)
      : flag_(flag), thread_([this, limit] {
          std::unique_lock lock(mu_);
          cv_.wait_for(lock, limit, [this] { return told_; });
          // On a stream of its own: the legacy stream may be stuck behind the very wait.
          cuCtxSetCurrent(Env::get().ctx);
          CUstream s = nullptr;
          cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
          cuStreamWriteValue32(s, flag_, 1, 0);  // a word store, as the waiting stream polls it
          cuStreamSynchronize(s);
          cuStreamDestroy(s);
        }) {}
  void now() {
    {
      std::lock_guard lock(mu_);
      told_ = true;
    }
    cv_.notify_all();
  }
  ~Watchdog() {
    now();
    thread_.join();
  }

 private:
  CUdeviceptr flag_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool told_ = false;
  std::thread thread_;
};

TEST(DmaBuf, TheDeviceSupportsDmaBufs) {
  int supported = 0;
  CU_OK(cuDeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, Env::get().dev));
  EXPECT_EQ(1, supported);
}

// A compressed weight registered with a NIC: the NIC reads its bytes, its
// write reaches the program after other weights came and went, the
// program's write reaches the NIC, and loading it again compresses nothing.
TEST(DmaBuf, ACompressedWeightExportedIsTheSameForTheNicAndTheProgram) {
  const auto data = weights(6 * kMiB, 81);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  const int fd = export_dmabuf(w, data.size());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(nic_read(fd, 0, data.size()) == data) << "the NIC reads other bytes than the program wrote";
  if (Env::get().neuzip())
    EXPECT_EQ(0u, Env::get().stats().bytes_original_compressed) << "an exported weight must stay decoded";
  pressure(82);
  // The NIC receives into it (an RDMA write).
  auto want = data;
  const size_t at = 3 * kMiB + 3 * 4096;
  std::vector<uint8_t> incoming(4096, 0x5a);
  ASSERT_TRUE(nic_io(fd, at, incoming.data(), incoming.size(), true));
  std::memcpy(want.data() + at, incoming.data(), incoming.size());
  EXPECT_EQ(host_hash(want.data(), want.size()), device_hash(w, data.size())) << "the NIC's write was lost";
  std::vector<uint8_t> back(data.size());
  CU_OK(cuMemcpyDtoH(back.data(), w, back.size()));
  EXPECT_TRUE(back == want);
  // The program writes (a kernel), other weights come and go, the NIC sends it.
  CUdeviceptr dst = w + kMiB;
  uint64_t n = kMiB;
  uint32_t v = 0x21;
  void* params[] = {&dst, &n, &v};
  CU_OK(cuLaunchKernel(Env::get().fn("fill_bytes"), 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr));
  CU_OK(cuCtxSynchronize());
  std::memset(want.data() + kMiB, 0x21, kMiB);
  pressure(85);
  EXPECT_TRUE(nic_read(fd, 0, data.size()) == want) << "the NIC does not see the program's write";
  // Loaded again, or declared a weight: nothing of it is compressed.
  upload(w, data, data.size());
  Env::get().declare(w, data.size(), NZ_TAG_BF16);
  Env::get().flush();
  if (Env::get().neuzip())
    EXPECT_EQ(0u, Env::get().stats().bytes_original_compressed) << "exported memory was compressed again";
  EXPECT_TRUE(nic_read(fd, 0, data.size()) == data);
  close(fd);
  CU_OK(cuMemFree(w));
}

// Read (so staged) before the export: the staging's pages must stay the
// allocation's, not go back at the next eviction.
TEST(DmaBuf, ExportedWhileStagedKeepsItsPagesUnderPressure) {
  const auto data = weights(4 * kMiB, 86);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  const int fd = export_dmabuf(w, data.size());
  ASSERT_GE(fd, 0);
  pressure(87);
  std::vector<uint8_t> incoming(2 * 4096, 0x77);
  ASSERT_TRUE(nic_io(fd, 2 * kMiB - 4096, incoming.data(), incoming.size(), true));  // across two 2 MiB pages
  auto want = data;
  std::memcpy(want.data() + 2 * kMiB - 4096, incoming.data(), incoming.size());
  pressure(90);
  EXPECT_EQ(host_hash(want.data(), want.size()), device_hash(w, data.size())) << "the NIC's write was lost";
  close(fd);
  CU_OK(cuMemFree(w));
}

// A slice in the middle of a larger allocation (libfabric registers what it
// sends; UCX the whole allocation): the slice's offsets are the dma-buf's.
TEST(DmaBuf, ASliceOfAnAllocationIsExportedAtItsOffset) {
  const auto data = weights(8 * kMiB, 93);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(6 * kMiB);
  const size_t from = 2 * kMiB + 4096, bytes = 3 * kMiB;
  const int fd = export_dmabuf(w + from, bytes);
  ASSERT_GE(fd, 0);
  const auto seen = nic_read(fd, 0, bytes);
  EXPECT_TRUE(std::equal(seen.begin(), seen.end(), data.begin() + from));
  std::vector<uint8_t> beyond(4096);
  EXPECT_FALSE(nic_io(fd, bytes, beyond.data(), beyond.size(), false)) << "the dma-buf reaches past its range";
  pressure(94);
  std::vector<uint8_t> incoming(4096, 0x3c);
  ASSERT_TRUE(nic_io(fd, 0, incoming.data(), incoming.size(), true));
  auto want = data;
  std::memcpy(want.data() + from, incoming.data(), incoming.size());
  EXPECT_EQ(host_hash(want.data(), want.size()), device_hash(w, data.size()));
  close(fd);
  CU_OK(cuMemFree(w));
}

// NCCL's proxy thread registers a buffer while the rank's kernels wait for
// their peers (here: a stream waiting for a word the host sets after the
// export). The export must not wait for the context.
TEST(DmaBuf, ExportedWhileAnotherStreamWaitsForLaterWork) {
  const auto data = weights(4 * kMiB, 98);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
  // The simulator moves cuMemAlloc memory to a memfd at its first export,
  // after a context wait a real driver does not make: done before the block.
  if (!Env::get().neuzip()) close(export_dmabuf(w, data.size()));
  CUdeviceptr flag = alloc(4096);  // below NEUZIP_MIN_BYTES: the driver's own memory
  CU_OK(cuMemsetD32(flag, 0, 1));
  CUstream blocked = nullptr;
  CU_OK(cuStreamCreate(&blocked, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamWaitValue32(blocked, flag, 1, CU_STREAM_WAIT_VALUE_EQ));
  Watchdog release(flag, std::chrono::seconds(8));  // a wait for the context fails the check below, not the run
  const auto start = std::chrono::steady_clock::now();
  const int fd = export_dmabuf(w, data.size());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5)) << "the export waited for the context";
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(blocked));
  release.now();
  CU_OK(cuStreamSynchronize(blocked));
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(nic_read(fd, 0, data.size()) == data) << "the NIC reads the weight before its decode completed";
  close(fd);
  CU_OK(cuStreamDestroy(blocked));
  CU_OK(cuMemFree(flag));
  CU_OK(cuMemFree(w));
}

// What the driver refuses (a pointer or size off the host page size, an
// unknown handle type) is refused, and costs the allocation nothing.
TEST(DmaBuf, RefusedExportsLeaveTheWeightCompressed) {
  const auto data = weights(4 * kMiB, 97);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
  const uint64_t before = Env::get().neuzip() ? Env::get().stats().bytes_original_compressed : 0;
  CUresult r = CUDA_SUCCESS;
  EXPECT_LT(export_dmabuf(w + 512, 4096, &r), 0);
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, r);
  EXPECT_LT(export_dmabuf(w, 4096 + 100, &r), 0);
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, r);
  int fd = -1;
  EXPECT_NE(CUDA_SUCCESS, cuMemGetHandleForAddressRange(&fd, w, 4096, static_cast<CUmemRangeHandleType>(7), 0));
  if (Env::get().neuzip())
    EXPECT_EQ(before, Env::get().stats().bytes_original_compressed) << "a refused export decoded the weight";
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CU_OK(cuMemFree(w));
}

// ---- stream waits -------------------------------------------------------------------

// A flag word inside a weight-sized buffer the runtime compressed (a small
// tensor in a caching-allocator segment): the wait reads its bytes.
TEST(StreamWaits, AWaitOnACompressedWordReadsIt) {
  auto data = weights(4 * kMiB, 101);
  const size_t at = 2 * kMiB + 64;
  const uint64_t seven = 7;  // the 32-bit word and the 64-bit word both read 7
  std::memcpy(data.data() + at, &seven, 8);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
  CUstream s = nullptr;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamWaitValue32(s, w + at, 7, CU_STREAM_WAIT_VALUE_EQ));
  CU_OK(cuStreamWaitValue64(s, w + at, 7, CU_STREAM_WAIT_VALUE_GEQ));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuMemFree(w));
}

// A consumer stream waits on a compressed flag another stream sets later;
// meanwhile other weights come and go under the budget. The word must stay
// mapped while the consumer polls it (a use recorded after the wait), the
// program must not hang (the host never waits for the blocked stream), and
// the consumer's next read sees the producer's signal and the weight whole.
TEST(StreamWaits, AWaitingStreamKeepsItsWordStagedWhileOthersComeAndGo) {
  auto data = weights(4 * kMiB, 103);
  const size_t at = 2 * kMiB + 128;
  std::memset(data.data() + at, 0, 8);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  // Loaded before the wait: cuMemFree waits for the device (a blocked
  // stream included), on a GPU as here.
  std::vector<std::unique_ptr<Weight>> others;
  for (uint32_t i = 0; i < 3; ++i) others.push_back(std::make_unique<Weight>(4 * kMiB, 104 + i));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
  CUstream consumer = nullptr, producer = nullptr;
  CU_OK(cuStreamCreate(&consumer, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamCreate(&producer, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamWaitValue32(consumer, w + at, 1, CU_STREAM_WAIT_VALUE_GEQ));
  CUdeviceptr out = alloc(64);
  CUdeviceptr p = w;
  uint64_t n = data.size();
  void* params[] = {&p, &n, &out};
  CU_OK(cuLaunchKernel(Env::get().fn("sum_bytes"), 1, 1, 1, 1, 1, 1, 0, consumer, params, nullptr));
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 2; ++round)
    for (const auto& o : others) EXPECT_EQ(o->hash(), device_hash(o->dev, o->host.size()));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20)) << "waited for the blocked stream";
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(consumer)) << "the wait did not hold its stream";
  CU_OK(cuStreamWriteValue32(producer, w + at, 1, 0));
  CU_OK(cuStreamSynchronize(consumer));
  const uint32_t one = 1;
  std::memcpy(data.data() + at, &one, 4);
  uint64_t sum = 0;
  CU_OK(cuMemcpyDtoH(&sum, out, sizeof sum));
  EXPECT_EQ(host_hash(data.data(), data.size()), sum) << "the consumer read something else";
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CU_OK(cuStreamDestroy(consumer));
  CU_OK(cuStreamDestroy(producer));
  others.clear();
  CU_OK(cuMemFree(out));
  CU_OK(cuMemFree(w));
}

// A kernel spinning on a flag the host sets later (a persistent kernel, a
// collective waiting for its peer) holds a compressed weight it reads; other
// weights come and go meanwhile. The host must not wait for that kernel
// (wait_then_sum gives up after 30 s: a wait for it shows as a pressure
// loop of 30 s), and the kernel's read must find the weight whole.
TEST(StreamWaits, AKernelSpinningOnALaterFlagDoesNotHoldUpOtherLaunches) {
  const auto data = weights(4 * kMiB, 109);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  std::vector<std::unique_ptr<Weight>> others;
  for (uint32_t i = 0; i < 3; ++i) others.push_back(std::make_unique<Weight>(4 * kMiB, 110 + i));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
  void* flag_host = nullptr;
  CU_OK(cuMemAllocHost(&flag_host, 64));
  auto* flag = static_cast<uint32_t*>(flag_host);
  __atomic_store_n(flag, 0u, __ATOMIC_RELEASE);
  CUdeviceptr flag_dev = reinterpret_cast<CUdeviceptr>(flag_host);
  CUdeviceptr out = alloc(64);
  CUstream s = nullptr;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  uint64_t n = data.size();
  void* params[] = {&flag_dev, &w, &n, &out};
  CU_OK(cuLaunchKernel(Env::get().fn("wait_then_sum"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 2; ++round)
    for (const auto& o : others) EXPECT_EQ(o->hash(), device_hash(o->dev, o->host.size()));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20)) << "waited for the spinning kernel";
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(s)) << "the kernel stopped spinning before its flag was set";
  __atomic_store_n(flag, 1u, __ATOMIC_RELEASE);
  CU_OK(cuStreamSynchronize(s));
  uint64_t sum = 0;
  CU_OK(cuMemcpyDtoH(&sum, out, sizeof sum));
  EXPECT_EQ(host_hash(data.data(), data.size()), sum);
  CU_OK(cuStreamDestroy(s));
  others.clear();
  CU_OK(cuMemFreeHost(flag_host));
  CU_OK(cuMemFree(out));
  CU_OK(cuMemFree(w));
}

// w staged, evicted unchanged by v, staged again: eligible for a handover
// when v needs its pages next.
void make_handover_eligible(const Weight& w, const Weight& v) {
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(6 * kMiB);
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
    EXPECT_EQ(v.hash(), device_hash(v.dev, v.host.size()));
  }
  EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
}

// A weight seen unchanged at an eviction is handed over at the next one: the
// device, not the host, waits for its last uses before its pages serve the
// next staging. If that use sits behind a stream waiting for a flag the
// program sets only after its next call, the next staging's decode would
// wait for it on the device, and the call for its decode: a deadlock. A use
// behind a queued stream wait is neither handed over nor waited for.
TEST(StreamWaits, ARangeUsedBehindAStreamWaitIsNotHandedOver) {
  Weight w(4 * kMiB, 113), v(4 * kMiB, 114);
  make_handover_eligible(w, v);
  CUdeviceptr flag = alloc(4096);  // below NEUZIP_MIN_BYTES: the driver's own memory
  CU_OK(cuMemsetD32(flag, 0, 1));
  CUstream consumer = nullptr;
  CU_OK(cuStreamCreate(&consumer, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamWaitValue32(consumer, flag, 1, CU_STREAM_WAIT_VALUE_EQ));
  CUdeviceptr out = alloc(64);
  CUdeviceptr p = w.dev;
  uint64_t n = w.host.size();
  void* params[] = {&p, &n, &out};
  CU_OK(cuLaunchKernel(Env::get().fn("sum_bytes"), 1, 1, 1, 1, 1, 1, 0, consumer, params, nullptr));
  Watchdog release(flag, std::chrono::seconds(15));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(v.hash(), device_hash(v.dev, v.host.size()));  // needs w's pages under the budget
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10))
      << "the staging waited for the blocked stream";
  EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(consumer));
  release.now();
  CU_OK(cuStreamSynchronize(consumer));
  uint64_t sum = 0;
  CU_OK(cuMemcpyDtoH(&sum, out, sizeof sum));
  EXPECT_EQ(w.hash(), sum);
  CU_OK(cuStreamDestroy(consumer));
  CU_OK(cuMemFree(out));
  CU_OK(cuMemFree(flag));
}

// A stream made to wait (cuStreamWaitEvent) for an event recorded behind a
// stream memory wait waits for the same later work: PyTorch orders a
// consumer stream after a communication stream this way. Its uses are
// neither waited for (below) nor handed over (the next test); before, only
// the patience found it (one host wait of NEUZIP_WAIT_PATIENCE_MS) and a
// handover's fence deadlocked until the flag was set.
struct ChainedWait {
  CUdeviceptr flag = 0;
  CUstream waiting = nullptr, consumer = nullptr;
  CUevent behind = nullptr;
  // `consumer` waits for an event recorded on `waiting` after its wait for the flag.
  void begin() {
    flag = alloc(4096);  // below NEUZIP_MIN_BYTES: the driver's own memory
    CU_OK(cuMemsetD32(flag, 0, 1));
    CU_OK(cuStreamCreate(&waiting, CU_STREAM_NON_BLOCKING));
    CU_OK(cuStreamCreate(&consumer, CU_STREAM_NON_BLOCKING));
    CU_OK(cuEventCreate(&behind, CU_EVENT_DISABLE_TIMING));
    CU_OK(cuStreamWaitValue32(waiting, flag, 1, CU_STREAM_WAIT_VALUE_EQ));
    CU_OK(cuEventRecord(behind, waiting));
    CU_OK(cuStreamWaitEvent(consumer, behind, 0));
  }
  ~ChainedWait() {
    cuStreamSynchronize(consumer);
    cuStreamSynchronize(waiting);
    cuEventDestroy(behind);
    cuStreamDestroy(consumer);
    cuStreamDestroy(waiting);
    cuMemFree(flag);
  }
  // Sums [p, p + n) into `out` on the consumer stream.
  void sum(CUdeviceptr p, uint64_t n, CUdeviceptr out) const { queue_sum(p, n, out, consumer); }
};

// A weight larger than the budget read behind a stream wait: the call is
// staged unit by unit, and each unit's store is given up once its decode
// (queued on the waiting stream) completed. The host used to wait for that
// decode, i.e. for the flag, and the program hung (here: until the watchdog).
TEST(StreamWaits, AWeightLargerThanTheBudgetIsStagedBehindAWait) {
  Weight w(8 * kMiB, 124);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(6 * kMiB);
  CUdeviceptr out = alloc(64);
  {
    ChainedWait chain;  // its `waiting` stream waits for the flag
    chain.begin();
    Watchdog release(chain.flag, std::chrono::seconds(15));
    const auto start = std::chrono::steady_clock::now();
    queue_sum(w.dev, w.host.size(), out, chain.waiting);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10))
        << "the launch waited for its own stream's wait";
    EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(chain.waiting));
    release.now();
  }
  EXPECT_EQ(w.hash(), read_word(out));
  EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
  CU_OK(cuMemFree(out));
}

TEST(StreamWaits, AStreamWaitingForAnEventBehindAWaitIsNotWaitedFor) {
  Weight w(4 * kMiB, 115);
  std::vector<std::unique_ptr<Weight>> others;
  for (uint32_t i = 0; i < 3; ++i) others.push_back(std::make_unique<Weight>(4 * kMiB, 116 + i));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
  CUdeviceptr out = alloc(64);
  {
    ChainedWait chain;
    chain.begin();
    Watchdog release(chain.flag, std::chrono::seconds(20));
    chain.sum(w.dev, w.host.size(), out);
    const uint64_t stalled = Env::get().stats().stalled_waits;
    for (int round = 0; round < 2; ++round)
      for (const auto& o : others) EXPECT_EQ(o->hash(), device_hash(o->dev, o->host.size()));
    EXPECT_EQ(stalled, Env::get().stats().stalled_waits)
        << "an eviction waited NEUZIP_WAIT_PATIENCE_MS for the consumer before passing it over";
    EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(chain.consumer)) << "the chain did not hold the consumer";
    release.now();
  }
  EXPECT_EQ(w.hash(), read_word(out)) << "the consumer read something else";
  EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
  others.clear();
  CU_OK(cuMemFree(out));
}

TEST(StreamWaits, AStreamWaitingForAnEventBehindAWaitIsNotHandedOver) {
  Weight w(4 * kMiB, 119), v(4 * kMiB, 120);
  make_handover_eligible(w, v);
  CUdeviceptr out = alloc(64);
  {
    ChainedWait chain;
    chain.begin();
    chain.sum(w.dev, w.host.size(), out);
    Watchdog release(chain.flag, std::chrono::seconds(15));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(v.hash(), device_hash(v.dev, v.host.size()));  // needs w's pages under the budget
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10))
        << "the staging waited for the consumer's chain";
    EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(chain.consumer));
    release.now();
  }
  EXPECT_EQ(w.hash(), read_word(out));
  CU_OK(cuMemFree(out));
}

// CUDA's implicit synchronization with the legacy default stream: work queued
// on the legacy stream waits for every blocking stream's earlier work (streams
// created without CU_STREAM_NON_BLOCKING: CuPy's, a plain cudaStreamCreate),
// and work queued on a blocking stream for the legacy stream's. So a wait on
// one holds the other's later work. The test's own work runs on a
// non-blocking stream (`side`): on either of the two it would be held too.
struct ImplicitWait {
  CUdeviceptr flag = 0;
  CUstream blocking = nullptr, side = nullptr;
  CUstream waiting = nullptr, behind = nullptr;  // one is the legacy stream (nullptr), the other `blocking`
  CUdeviceptr out = 0;
  explicit ImplicitWait(bool legacy_waits) {
    flag = alloc(4096);  // below NEUZIP_MIN_BYTES: the driver's own memory
    out = alloc(64);
    EXPECT_EQ(CUDA_SUCCESS, cuMemsetD32(flag, 0, 1));
    EXPECT_EQ(CUDA_SUCCESS, cuStreamCreate(&blocking, CU_STREAM_DEFAULT));
    EXPECT_EQ(CUDA_SUCCESS, cuStreamCreate(&side, CU_STREAM_NON_BLOCKING));
    waiting = legacy_waits ? nullptr : blocking;
    behind = legacy_waits ? blocking : nullptr;
    EXPECT_EQ(CUDA_SUCCESS, cuStreamWaitValue32(waiting, flag, 1, CU_STREAM_WAIT_VALUE_EQ));
  }
  ~ImplicitWait() {
    cuStreamSynchronize(blocking);
    cuStreamSynchronize(nullptr);
    cuStreamDestroy(side);
    cuStreamDestroy(blocking);
    cuMemFree(out);
    cuMemFree(flag);
  }
  // A weight's sum read on `side` (the legacy stream's copies would wait).
  uint64_t hash_on_side(const Weight& w) const {
    queue_sum(w.dev, w.host.size(), out, side);
    uint64_t v = 0;
    EXPECT_EQ(CUDA_SUCCESS, cuMemcpyDtoHAsync(&v, out, sizeof v, side));
    EXPECT_EQ(CUDA_SUCCESS, cuStreamSynchronize(side));
    return v;
  }
};

// A weight read on the stream held implicitly; other weights come and go on
// `side`. Before, the evictions of the held weight waited the whole
// patience (counted in stalled_waits) before passing it over.
TEST(StreamWaits, AStreamHeldByTheLegacyStreamsImplicitOrderIsNotWaitedFor) {
  for (const bool legacy_waits : {false, true}) {
    SCOPED_TRACE(legacy_waits ? "the legacy stream waits, a blocking stream reads"
                              : "a blocking stream waits, the legacy stream reads");
    Weight w(4 * kMiB, 125);
    std::vector<std::unique_ptr<Weight>> others;
    for (uint32_t i = 0; i < 3; ++i) others.push_back(std::make_unique<Weight>(4 * kMiB, 126 + i));
    Env::get().flush();
    EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
    CUdeviceptr sum = alloc(64);
    {
      ImplicitWait held(legacy_waits);
      Watchdog release(held.flag, std::chrono::seconds(20));
      queue_sum(w.dev, w.host.size(), sum, held.behind);
      const uint64_t stalled = Env::get().stats().stalled_waits;
      for (int round = 0; round < 2; ++round)
        for (const auto& o : others) EXPECT_EQ(o->hash(), held.hash_on_side(*o));
      EXPECT_EQ(stalled, Env::get().stats().stalled_waits)
          << "an eviction waited NEUZIP_WAIT_PATIENCE_MS for the held stream before passing it over";
      EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(held.behind)) << "the implicit order did not hold the stream";
      release.now();
    }
    EXPECT_EQ(w.hash(), read_word(sum)) << "the held stream read something else";
    EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
    CU_OK(cuMemFree(sum));
  }
}

// The same weight, eligible for a handover: the handover's fence would make
// the next staging's decode (on `side`) wait on the device for the held
// stream, and the launch for that decode, until the watchdog.
TEST(StreamWaits, AStreamHeldByTheLegacyStreamsImplicitOrderIsNotHandedOver) {
  for (const bool legacy_waits : {false, true}) {
    SCOPED_TRACE(legacy_waits ? "the legacy stream waits, a blocking stream reads"
                              : "a blocking stream waits, the legacy stream reads");
    Weight w(4 * kMiB, 129), v(4 * kMiB, 130);
    make_handover_eligible(w, v);
    CUdeviceptr sum = alloc(64);
    {
      ImplicitWait held(legacy_waits);
      queue_sum(w.dev, w.host.size(), sum, held.behind);
      Watchdog release(held.flag, std::chrono::seconds(15));
      const auto start = std::chrono::steady_clock::now();
      EXPECT_EQ(v.hash(), held.hash_on_side(v));  // needs w's pages under the budget
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10))
          << "the staging waited for the held stream";
      EXPECT_EQ(CUDA_ERROR_NOT_READY, cuStreamQuery(held.behind));
      release.now();
    }
    EXPECT_EQ(w.hash(), read_word(sum));
    CU_OK(cuMemFree(sum));
  }
}

// The same through cuStreamBatchMemOp (a wait and a write in one batch).
TEST(StreamWaits, ABatchedWaitOnACompressedWordReadsIt) {
  auto data = weights(4 * kMiB, 107);
  const size_t at = 3 * kMiB;
  const uint64_t five = 5;
  std::memcpy(data.data() + at, &five, 8);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
  CUstreamBatchMemOpParams ops[2] = {};
  ops[0].waitValue.operation = CU_STREAM_MEM_OP_WAIT_VALUE_64;
  ops[0].waitValue.address = w + at;
  ops[0].waitValue.value64 = 5;
  ops[0].waitValue.flags = CU_STREAM_WAIT_VALUE_EQ;
  ops[1].writeValue.operation = CU_STREAM_MEM_OP_WRITE_VALUE_64;
  ops[1].writeValue.address = w + at + 8;
  ops[1].writeValue.value64 = 9;
  CUstream s = nullptr;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamBatchMemOp(s, 2, ops, 0));
  CU_OK(cuStreamSynchronize(s));
  const uint64_t nine = 9;
  std::memcpy(data.data() + at + 8, &nine, 8);
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuMemFree(w));
}

}  // namespace
}  // namespace fw
