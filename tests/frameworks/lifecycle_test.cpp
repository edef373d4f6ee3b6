// Classes 2 (capture hygiene), 4 (context life cycle), 13 (no hidden
// synchronisation), 15 (recycled memory).
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include <unistd.h>

#include "fw_env.h"

extern "C" CUresult CUDAAPI cuGraphInstantiate_v2(CUgraphExec*, CUgraph, CUgraphNode*, char*, size_t);

namespace fw {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

void launch_sum(CUstream s, CUdeviceptr p, uint64_t n, CUdeviceptr out, CUresult* r) {
  void* params[] = {&p, &n, &out};
  *r = cuLaunchKernel(Env::get().fn("sum_bytes"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr);
}

uint64_t read_u64(CUdeviceptr p) {
  uint64_t v = 0;
  EXPECT_EQ(CUDA_SUCCESS, cuMemcpyDtoH(&v, p, 8));
  return v;
}

// An eager launch on one stream while another stream (this thread, then
// another thread) captures in global mode: the capture must survive.
TEST(Capture, EagerWorkWhileAnotherStreamCaptures) {
  Weight w(4 * kMiB, 40), w2(4 * kMiB, 41);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
  CUstream cap, eager;
  CU_OK(cuStreamCreate(&cap, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamCreate(&eager, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out_graph = alloc(64), out_eager = alloc(64), out_thread = alloc(64);
  CU_OK(cuStreamBeginCapture(cap, CU_STREAM_CAPTURE_MODE_GLOBAL));
  CUresult r;
  launch_sum(cap, w.dev, w.host.size(), out_graph, &r);
  EXPECT_EQ(CUDA_SUCCESS, r);
  launch_sum(eager, w2.dev, w2.host.size(), out_eager, &r);  // same thread, not capturing
  EXPECT_EQ(CUDA_SUCCESS, r);
  CUresult thread_r = CUDA_ERROR_UNKNOWN;
  std::thread other([&] {
    cuCtxSetCurrent(Env::get().ctx);
    CUstream s;
    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
    launch_sum(s, w2.dev, w2.host.size(), out_thread, &thread_r);
    cuStreamSynchronize(s);
    cuStreamDestroy(s);
  });
  other.join();
  EXPECT_EQ(CUDA_SUCCESS, thread_r);
  CUgraph graph = nullptr;
  CU_OK(cuStreamEndCapture(cap, &graph));
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, graph, 0));
  CU_OK(cuGraphLaunch(exec, cap));
  CU_OK(cuStreamSynchronize(cap));
  CU_OK(cuStreamSynchronize(eager));
  EXPECT_EQ(w.hash(), read_u64(out_graph));
  EXPECT_EQ(w2.hash(), read_u64(out_eager));
  EXPECT_EQ(w2.hash(), read_u64(out_thread));
  cuGraphExecDestroy(exec);
  cuGraphDestroy(graph);
  cuStreamDestroy(cap);
  cuStreamDestroy(eager);
}

// The CUDA 11.x instantiate entry point pins what the graph reads, as the
// 12.x one does: other weights staged in between must not evict it.
TEST(Capture, OldInstantiateEntryPointPins) {
  Weight w(4 * kMiB, 42);
  std::vector<std::unique_ptr<Weight>> others;
  for (uint32_t i = 0; i < 4; ++i) others.push_back(std::make_unique<Weight>(4 * kMiB, 50 + i));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(16 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64), out2 = alloc(64);
  CU_OK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  CUresult r;
  launch_sum(s, w.dev, w.host.size(), out, &r);
  EXPECT_EQ(CUDA_SUCCESS, r);
  CUgraph graph = nullptr;
  CU_OK(cuStreamEndCapture(s, &graph));
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate_v2(&exec, graph, nullptr, nullptr, 0));
  CU_OK(cuGraphDestroy(graph));
  for (int round = 0; round < 3; ++round) {
    for (auto& o : others) {
      launch_sum(s, o->dev, o->host.size(), out2, &r);
      ASSERT_EQ(CUDA_SUCCESS, r);
      CU_OK(cuStreamSynchronize(s));
      EXPECT_EQ(o->hash(), read_u64(out2));
    }
    CU_OK(cuGraphLaunch(exec, s));
    CU_OK(cuStreamSynchronize(s));
    EXPECT_EQ(w.hash(), read_u64(out));
  }
  cuGraphExecDestroy(exec);
  cuStreamDestroy(s);
}

// cuDevicePrimaryCtxReset: the runtime drops what it held in the old context
// (no leak) and compresses again in the new one.
TEST(Context, PrimaryContextResetThenReuse) {
  const size_t before = free_memory();
  {
    const auto data = weights(8 * kMiB, 60);
    CUdeviceptr w = alloc(data.size());
    upload(w, data, data.size());
    Env::get().flush();
    EXPECT_COMPRESSED_AT_LEAST(6 * kMiB);
    EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  }
  CU_OK(cuDevicePrimaryCtxReset(Env::get().dev));
  CUcontext ctx;
  CU_OK(cuDevicePrimaryCtxRetain(&ctx, Env::get().dev));
  CU_OK(cuCtxSetCurrent(ctx));
  Env::get().ctx = ctx;
  EXPECT_GE(free_memory() + kMiB, before) << "memory leaked across the reset";
  Env::get().reload_module();
  const auto data = weights(8 * kMiB, 61);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(6 * kMiB);
  CUdeviceptr out = alloc(64);
  uint64_t n = data.size();
  EXPECT_EQ(host_hash(data.data(), n), launch_and_read(Env::get().fn("sum_bytes"), {&w, &n, &out}, out));
  cuMemFree(w);
}

// A free from a thread whose current context is another one must still wait
// for the work queued on the memory.
TEST(Context, FreeFromAnotherContextWaitsForQueuedWork) {
  const auto data = weights(8 * kMiB, 62);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(6 * kMiB);
  void* flag_host = nullptr;
  CU_OK(cuMemAllocHost(&flag_host, 64));
  auto* flag = static_cast<uint32_t*>(flag_host);
  __atomic_store_n(flag, 0u, __ATOMIC_RELEASE);
  CUdeviceptr flag_dev = reinterpret_cast<CUdeviceptr>(flag_host);
  CUdeviceptr out = alloc(64);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  uint64_t n = data.size();
  void* params[] = {&flag_dev, &w, &n, &out};
  CU_OK(cuLaunchKernel(Env::get().fn("wait_then_sum"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  CUresult free_r = CUDA_ERROR_UNKNOWN;
  std::thread other([&] {
    CUcontext mine = nullptr;
    cuCtxCreate(&mine, nullptr, 0, Env::get().dev);
    free_r = cuMemFree(w);
    cuCtxDestroy(mine);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  __atomic_store_n(flag, 1u, __ATOMIC_RELEASE);
  other.join();
  EXPECT_EQ(CUDA_SUCCESS, free_r);
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(host_hash(data.data(), n), read_u64(out));
  cuStreamDestroy(s);
  cuMemFreeHost(flag_host);
}

// A free that waits for queued work must not stop other threads from
// launching meanwhile (it once held the runtime's lock while it waited).
TEST(NoHiddenSync, FreeWaitingForWorkDoesNotBlockOtherLaunches) {
  Weight w(4 * kMiB, 63);
  const auto victim_data = weights(4 * kMiB, 64);
  CUdeviceptr victim = alloc(victim_data.size());
  upload(victim, victim_data, victim_data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
  void* flag_host = nullptr;
  CU_OK(cuMemAllocHost(&flag_host, 64));
  auto* flag = static_cast<uint32_t*>(flag_host);
  __atomic_store_n(flag, 0u, __ATOMIC_RELEASE);
  CUdeviceptr flag_dev = reinterpret_cast<CUdeviceptr>(flag_host);
  CUdeviceptr out = alloc(64), out2 = alloc(64);
  CUstream slow, fast;
  CU_OK(cuStreamCreate(&slow, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamCreate(&fast, CU_STREAM_NON_BLOCKING));
  uint64_t n = victim_data.size();
  void* params[] = {&flag_dev, &victim, &n, &out};
  CU_OK(cuLaunchKernel(Env::get().fn("wait_then_sum"), 1, 1, 1, 1, 1, 1, 0, slow, params, nullptr));
  std::thread freer([&] {
    cuCtxSetCurrent(Env::get().ctx);
    cuMemFree(victim);  // waits until the slow kernel is done
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Meanwhile this thread stages and reads a compressed weight. A watchdog
  // releases the slow kernel after 10 s so a deadlock fails instead of hanging.
  std::atomic<bool> done{false}, watchdog_fired{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 1000 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!done) {
      watchdog_fired = true;
      __atomic_store_n(flag, 1u, __ATOMIC_RELEASE);
    }
  });
  CUresult r;
  launch_sum(fast, w.dev, w.host.size(), out2, &r);
  EXPECT_EQ(CUDA_SUCCESS, r);
  EXPECT_EQ(CUDA_SUCCESS, cuStreamSynchronize(fast));
  done = true;
  watchdog.join();
  EXPECT_FALSE(watchdog_fired) << "a launch waited for another thread's cuMemFree";
  EXPECT_EQ(w.hash(), read_u64(out2));
  __atomic_store_n(flag, 1u, __ATOMIC_RELEASE);
  freer.join();
  cuStreamDestroy(slow);
  cuStreamDestroy(fast);
  cuMemFreeHost(flag_host);
}

// PyTorch recycles blocks without cuMemFree: a batch copied into the same
// block every step is not a weight and must not be compressed.
TEST(Recycled, BatchBufferCopiedEveryStepIsNotCompressed) {
  Weight w(8 * kMiB, 70);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
  const size_t batch_bytes = 4 * kMiB;
  CUdeviceptr seg = alloc(8 * kMiB);
  CUdeviceptr batch = seg + 2 * kMiB;
  CUdeviceptr out = alloc(64), out2 = alloc(64);
  for (uint32_t step = 0; step < 6; ++step) {
    const auto data = weights(batch_bytes, 100 + step);
    CU_OK(cuMemcpyHtoD(batch, data.data(), data.size()));
    CUresult r;
    launch_sum(nullptr, batch, batch_bytes, out, &r);
    ASSERT_EQ(CUDA_SUCCESS, r);
    launch_sum(nullptr, w.dev, w.host.size(), out2, &r);
    ASSERT_EQ(CUDA_SUCCESS, r);
    CU_OK(cuCtxSynchronize());
    EXPECT_EQ(host_hash(data.data(), batch_bytes), read_u64(out));
    EXPECT_EQ(w.hash(), read_u64(out2));
  }
  const char* trace = std::getenv("NEUZIP_TRACE");
  if (Env::get().neuzip() && trace != nullptr) {
    std::ifstream in(trace);
    std::string line;
    int batch_compressions = 0, lines = 0;
    while (std::getline(in, line)) {
      ++lines;
      if (line.find("\"event\":\"compress\"") == std::string::npos) continue;
      const auto at = line.find("\"ptr\":\"");
      if (at == std::string::npos) continue;
      const uint64_t ptr = std::strtoull(line.c_str() + at + 7, nullptr, 16);
      if (ptr >= batch && ptr < batch + batch_bytes) ++batch_compressions;
    }
    EXPECT_GT(lines, 0);
    EXPECT_EQ(0, batch_compressions) << "the per-step batch buffer was compressed";
  }
  cuMemFree(seg);
}

}  // namespace
}  // namespace fw

namespace fw {
namespace {

// A decode whose checksum fails traps; the error surfaces at a later
// synchronisation, and neuzip names the cause there (NEUZIP_FAULT_INJECT=store
// damages every store; without neuzip the case only checks the read is exact).
TEST(TrapReport, ChecksumFailureIsNamedAtTheSynchronisation) {
  const auto data = weights(4 * kMiB, 80);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  const bool injected = Env::get().neuzip() && std::getenv("NEUZIP_FAULT_INJECT") != nullptr;
  CUdeviceptr out = alloc(64);
  uint64_t n = data.size();
  void* params[] = {&w, &n, &out};
  CUresult launched = CUDA_SUCCESS, synced = CUDA_SUCCESS;
  const std::string text = capture_stderr([&] {
    launched = cuLaunchKernel(Env::get().fn("sum_bytes"), 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr);
    synced = cuStreamSynchronize(nullptr);
  });
  if (!injected) {
    EXPECT_EQ(CUDA_SUCCESS, launched);
    EXPECT_EQ(CUDA_SUCCESS, synced);
    EXPECT_EQ(host_hash(data.data(), n), read_u64(out));
    return;
  }
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  EXPECT_TRUE(launched == CUDA_ERROR_LAUNCH_FAILED || synced == CUDA_ERROR_LAUNCH_FAILED)
      << error_name(launched) << " / " << error_name(synced);
  EXPECT_NE(std::string::npos, text.find("neuzip: checksum mismatch")) << text;
  EXPECT_GE(Env::get().stats().checksum_failures, 1u);
}

}  // namespace
}  // namespace fw
