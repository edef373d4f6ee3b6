// A model split over several GPUs (accelerate's device_map="auto", pipeline
// parallelism): device 0 holds weights neuzip compresses; device 1 enables
// peer access to device 0 and reads its weights and activations directly, as
// PyTorch does once it has enabled peer access for a copy; device 2 never
// enables it and copies across devices, which the driver then does for
// cuMemAlloc memory without asking. Run with NZSIM_DEVICES=3 and a budget
// small enough that every weight is evicted between uses.
//
// Without neuzip these are valid CUDA on cuMemAlloc memory. Under neuzip the
// same memory is virtual memory: peer access does not cover it (each device
// needs its own cuMemSetAccess), plain copies of it made from another device
// are refused, and an event is recorded only on streams of its own context.
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "fw_env.h"

namespace fw {
namespace {

constexpr size_t kMiB = 1 << 20;

// The primary context of `device` with the kernel module loaded in it.
struct OtherDevice {
  CUcontext ctx = nullptr;
  CUmodule mod = nullptr;
  explicit OtherDevice(int device) {
    Env::get();
    EXPECT_EQ(CUDA_SUCCESS, cuDevicePrimaryCtxRetain(&ctx, device));
    EXPECT_EQ(CUDA_SUCCESS, cuCtxSetCurrent(ctx));
    EXPECT_EQ(CUDA_SUCCESS, cuModuleLoad(&mod, Env::get().module_path.c_str()));
    EXPECT_EQ(CUDA_SUCCESS, cuCtxSetCurrent(Env::get().ctx));
  }
  CUfunction fn(const char* name) const {
    CUfunction f = nullptr;
    EXPECT_EQ(CUDA_SUCCESS, cuModuleGetFunction(&f, mod, name)) << name;
    return f;
  }
};

OtherDevice& device(int d) {
  if (d == 1) {
    static OtherDevice one(1);
    return one;
  }
  static OtherDevice two(2);
  return two;
}

// Makes `ctx` current while it lives; device 0's context again after.
struct Current {
  explicit Current(CUcontext ctx) { cuCtxSetCurrent(ctx); }
  ~Current() { cuCtxSetCurrent(Env::get().ctx); }
};

// sum_bytes on `d` of memory anywhere; the result lands on device `d`.
uint64_t hash_on(int d, CUdeviceptr p, uint64_t n, CUresult* launch = nullptr) {
  Current on(device(d).ctx);
  CUdeviceptr out = 0;
  EXPECT_EQ(CUDA_SUCCESS, cuMemAlloc(&out, 64));
  const uint64_t h = launch_and_read(device(d).fn("sum_bytes"), {&p, &n, &out}, out, nullptr, launch);
  cuMemFree(out);
  return h;
}

// First in this file: the program enables peer access before it allocates
// anything (PyTorch enables it at the first copy, which may come first), so
// the runtime is not set up yet and must remember it.
TEST(Devices, PeerAccessEnabledBeforeTheFirstAllocationReachesCompressedWeights) {
  {
    Current on(device(1).ctx);
    CU_OK(cuCtxEnablePeerAccess(Env::get().ctx, 0));
  }
  Weight w(4 * kMiB, 61), o1(4 * kMiB, 62), o2(4 * kMiB, 63);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(12 * kMiB);
  for (int round = 0; round < 3; ++round) {
    CUresult r = CUDA_SUCCESS;
    EXPECT_EQ(w.hash(), hash_on(1, w.dev, w.host.size(), &r)) << "round " << round;
    ASSERT_EQ(CUDA_SUCCESS, r);
    // Device 0 reads the others: under the budget this evicts w.
    EXPECT_EQ(o1.hash(), device_hash(o1.dev, o1.host.size()));
    EXPECT_EQ(o2.hash(), device_hash(o2.dev, o2.host.size()));
  }
  Current on(device(1).ctx);
  EXPECT_EQ(CUDA_SUCCESS, cuCtxSynchronize()) << "device 1 met memory it was not granted";
}

// Device 1 may reach device 0's memory (PyTorch's get_p2p_access); enabled
// once per process, whichever case comes first.
void enable_peer_access_from_device_1() {
  Current on(device(1).ctx);
  const CUresult r = cuCtxEnablePeerAccess(Env::get().ctx, 0);
  EXPECT_TRUE(r == CUDA_SUCCESS || r == CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) << error_name(r);
}

// A weight read on device 1's stream while device 0's budget needs its
// pages: the read's use (an event on device 1's stream) must hold them. The
// weight is staged by device 0 first, so device 1's launch finds it mapped
// and only its use orders the eviction after it.
TEST(Devices, AReadQueuedOnAnotherDeviceHoldsTheWeight) {
  enable_peer_access_from_device_1();
  Weight w(4 * kMiB, 64), o1(4 * kMiB, 65), o2(4 * kMiB, 66);
  Env::get().flush();
  EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
  void* flag_host = nullptr;
  CU_OK(cuMemAllocHost(&flag_host, 64));
  auto* flag = static_cast<uint32_t*>(flag_host);
  __atomic_store_n(flag, 0u, __ATOMIC_RELEASE);
  CUstream s1 = nullptr;
  CUdeviceptr out = 0;
  {
    Current on(device(1).ctx);
    CU_OK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
    CU_OK(cuMemAlloc(&out, 64));
    CUdeviceptr flag_dev = reinterpret_cast<CUdeviceptr>(flag_host);
    CUdeviceptr p = w.dev;
    uint64_t n = w.host.size();
    void* params[] = {&flag_dev, &p, &n, &out};
    CU_OK(cuLaunchKernel(device(1).fn("wait_then_sum"), 1, 1, 1, 1, 1, 1, 0, s1, params, nullptr));
  }
  // Let the kernel go only after device 0 has read the others.
  std::atomic<bool> reads_done{false};
  std::thread release([&] {
    while (!reads_done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    __atomic_store_n(flag, 1u, __ATOMIC_RELEASE);
  });
  std::thread failsafe_release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    __atomic_store_n(flag, 1u, __ATOMIC_RELEASE);  // a runtime that waits for the queued read on the host must not hang
  });
  EXPECT_EQ(o1.hash(), device_hash(o1.dev, o1.host.size()));
  EXPECT_EQ(o2.hash(), device_hash(o2.dev, o2.host.size()));
  reads_done = true;
  release.join();
  failsafe_release.join();
  {
    Current on(device(1).ctx);
    EXPECT_EQ(CUDA_SUCCESS, cuStreamSynchronize(s1)) << "the weight was evicted under device 1's read";
    uint64_t h = 0;
    CU_OK(cuMemcpyDtoH(&h, out, 8));
    EXPECT_EQ(w.hash(), h);
    cuStreamDestroy(s1);
    cuMemFree(out);
  }
  cuMemFreeHost(flag_host);
}

// Device 2 never enables peer access: its plain copies to and from device 0
// (weights out, activations back) work on cuMemAlloc memory, and must work
// on the memory neuzip serves in its place.
TEST(Devices, CopiesFromADeviceWithoutPeerAccess) {
  Weight w(4 * kMiB, 67), o1(4 * kMiB, 68);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
  const size_t n = w.host.size();
  CUdeviceptr back = alloc(n);  // device 0: where the activations come back
  CUdeviceptr copy = 0;
  {
    Current on(device(2).ctx);
    CU_OK(cuMemAlloc(&copy, n));
    CU_OK(cuMemcpyDtoD(copy, w.dev, n));  // the weight to device 2
  }
  EXPECT_EQ(w.hash(), hash_on(2, copy, n));
  EXPECT_EQ(o1.hash(), device_hash(o1.dev, o1.host.size()));  // evicts w
  {
    Current on(device(2).ctx);
    CUstream s2 = nullptr;
    CU_OK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
    CU_OK(cuMemcpyAsync(copy, w.dev, n, s2));   // again, from its store
    CU_OK(cuMemcpyAsync(back, copy, n, s2));    // and back to device 0
    CU_OK(cuStreamSynchronize(s2));
    cuStreamDestroy(s2);
  }
  EXPECT_EQ(w.hash(), device_hash(back, n));
  EXPECT_EQ(w.hash(), device_hash(w.dev, n));
  {
    Current on(device(2).ctx);
    cuMemFree(copy);
  }
  cuMemFree(back);
}

// Host copies of device 0's memory made while device 2 is current (a
// program that does not set the tensor's device first): cuMemAlloc memory
// takes them; the memory neuzip serves must too, in the order of device 2's
// stream.
TEST(Devices, HostCopiesFromAnotherDevicesContext) {
  Weight w(4 * kMiB, 69), o1(4 * kMiB, 70);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
  const size_t n = w.host.size();
  std::vector<uint8_t> back(n);
  CUdeviceptr fresh = alloc(n);  // device 0, served, filled from device 2's context
  void* pinned = nullptr;
  CU_OK(cuMemAllocHost(&pinned, n));
  {
    Current on(device(2).ctx);
    CU_OK(cuMemcpyDtoH(back.data(), w.dev, n));
    EXPECT_EQ(w.hash(), host_hash(back.data(), n));
    CU_OK(cuMemcpyHtoD(fresh, o1.host.data(), n));
    CUstream s2 = nullptr;
    CU_OK(cuStreamCreate(&s2, CU_STREAM_DEFAULT));  // blocking: the legacy stream waits for it
    std::memset(pinned, 0, n);
    CU_OK(cuMemcpyDtoHAsync(pinned, o1.dev, n, s2));
    CU_OK(cuStreamSynchronize(s2));
    EXPECT_EQ(o1.hash(), host_hash(static_cast<const uint8_t*>(pinned), n));
    std::memcpy(pinned, w.host.data(), n);
    CU_OK(cuMemcpyHtoDAsync(fresh, pinned, n, s2));
    CU_OK(cuMemcpy(reinterpret_cast<CUdeviceptr>(back.data()), fresh, n));  // unified, host side
    CU_OK(cuStreamSynchronize(s2));
    cuStreamDestroy(s2);
  }
  EXPECT_EQ(w.hash(), host_hash(back.data(), n)) << "the unified read was not ordered after the async upload";
  EXPECT_EQ(w.hash(), device_hash(fresh, n));
  EXPECT_EQ(o1.hash(), device_hash(o1.dev, n));
  cuMemFreeHost(pinned);
  cuMemFree(fresh);
}

// A context of device 1 reads a weight and is destroyed: the use it left
// on the weight (an event of that context) must go with it, not be waited
// on, destroyed or pooled again later, when device 0 evicts the weight.
TEST(Devices, AReadersContextDestroyedLeavesNoDeadEventBehind) {
  Weight w(4 * kMiB, 73), o1(4 * kMiB, 74), o2(4 * kMiB, 75);
  Env::get().flush();
  CUcontext reader = nullptr;
  CU_OK(cuCtxCreate(&reader, nullptr, 0, 1));  // current now
  const CUresult enabled = cuCtxEnablePeerAccess(Env::get().ctx, 0);
  EXPECT_TRUE(enabled == CUDA_SUCCESS || enabled == CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED);
  CUmodule mod = nullptr;
  CU_OK(cuModuleLoad(&mod, Env::get().module_path.c_str()));
  CUfunction sum = nullptr;
  CU_OK(cuModuleGetFunction(&sum, mod, "sum_bytes"));
  CUdeviceptr out = 0;
  CU_OK(cuMemAlloc(&out, 64));
  uint64_t n = w.host.size();
  EXPECT_EQ(w.hash(), launch_and_read(sum, {&w.dev, &n, &out}, out));
  const std::string said = capture_stderr([&] {
    EXPECT_EQ(CUDA_SUCCESS, cuCtxDestroy(reader));
    cuCtxSetCurrent(Env::get().ctx);
    EXPECT_EQ(o1.hash(), device_hash(o1.dev, o1.host.size()));  // evicts w
    EXPECT_EQ(o2.hash(), device_hash(o2.dev, o2.host.size()));
    EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
  });
  EXPECT_EQ(said.find("not live"), std::string::npos) << said;
}

// Run apart, with LOCAL_RANK=1 on two devices (torchrun's rank 1): a stray
// tensor on device 0 before the program moves to its device (a library's
// probe, an early torch.zeros(1, device="cuda")) must not claim the runtime
// for device 0; the rank's weights on device 1 are the ones compressed.
TEST(DeviceChoice, TheRanksDeviceIsServedNotTheFirstThatAllocates) {
  Env::get();
  std::string said;
  CUdeviceptr stray = 0;
  said = capture_stderr([&] { stray = alloc(4 * kMiB); });
  ASSERT_NE(stray, 0u);
  if (Env::get().neuzip()) {
    EXPECT_NE(said.find("allocations on device 0 pass through: LOCAL_RANK=1"), std::string::npos) << said;
  }
  std::vector<uint8_t> stray_host = weights(4 * kMiB, 70);
  upload(stray, stray_host, 4 * kMiB);
  {
    Current on(device(1).ctx);
    Weight w(4 * kMiB, 71), v(4 * kMiB, 72);
    Env::get().flush();
    EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
    if (Env::get().neuzip()) {
      EXPECT_LT(Env::get().stats().bytes_original_compressed, 12 * kMiB) << "device 0's tensor was compressed";
    }
    EXPECT_EQ(w.hash(), hash_on(1, w.dev, w.host.size()));
    EXPECT_EQ(v.hash(), hash_on(1, v.dev, v.host.size()));
    EXPECT_EQ(CUDA_SUCCESS, cuCtxSynchronize());
  }
  EXPECT_EQ(host_hash(stray_host.data(), stray_host.size()), device_hash(stray, stray_host.size()));
  cuMemFree(stray);
}

}  // namespace
}  // namespace fw
