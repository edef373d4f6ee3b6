// Device memory shared between processes with legacy CUDA IPC
// (cuIpcGetMemHandle / cuIpcOpenMemHandle): torch.multiprocessing sends CUDA
// tensors that way (the caching allocator's segment base plus an offset),
// vLLM's custom all-reduce shares its buffers, RLHF trainers hand their
// weights to an inference engine in another process. Under neuzip the
// memory is virtual memory, which the driver's legacy IPC cannot export; the
// program must not notice: the other process reads what this one wrote,
// this one sees what the other wrote, and nothing shared is compressed
// behind the other process's back.
//
// The other process is this test binary again (posix_spawn, so a fresh
// process that initialises CUDA itself; a forked child cannot), running
// IpcChild.* with what to do in its environment. Under neuzip it inherits
// LD_PRELOAD and opens the handle through neuzip too.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fw_env.h"

extern char** environ;

namespace fw {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

std::string to_hex(const void* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const auto b = static_cast<const uint8_t*>(p)[i];
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

bool from_hex(const std::string& s, void* out, size_t n) {
  if (s.size() != 2 * n) return false;
  for (size_t i = 0; i < n; ++i) static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(std::stoul(s.substr(2 * i, 2), nullptr, 16));
  return true;
}

uint64_t env_u64(const char* name, uint64_t fallback = 0) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

// Runs IpcChild.Run in a new process with `vars` added; its exit status
// (-1 when it had to be killed after 60 s).
int run_child(const CUipcMemHandle& handle, const std::vector<std::string>& vars, std::string* output) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("FW_IPC_HANDLE=" + to_hex(&handle, sizeof handle));
  for (const auto& v : vars) env_strings.push_back(v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  char log_path[] = "/tmp/fw_ipc_child_XXXXXX";
  const int log_fd = mkstemp(log_path);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (log_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
  }
  std::string exe = "/proc/self/exe";
  std::string filter = "--gtest_filter=IpcChild.Run";
  char* argv[] = {exe.data(), filter.data(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  int status = -1;
  if (rc == 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      const pid_t done = waitpid(pid, &status, WNOHANG);
      if (done == pid) break;
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        status = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (log_fd >= 0) {
    std::string text;
    char buf[4096];
    ssize_t n;
    lseek(log_fd, 0, SEEK_SET);
    while ((n = read(log_fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    close(log_fd);
    unlink(log_path);
    if (output) *output = text;
  }
  if (status == -1) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The other process. FW_IPC_HASH: hash of the FW_IPC_BYTES it must read from
// the base; FW_IPC_WRITE_AT / FW_IPC_WRITE_BYTES / FW_IPC_WRITE_VALUE: what it
// writes there with a kernel before closing; FW_IPC_OPENS: how many times it
// opens (each must return the same pointer) and closes.
TEST(IpcChild, Run) {
  const char* hex = std::getenv("FW_IPC_HANDLE");
  if (hex == nullptr) GTEST_SKIP() << "run by Ipc.* in another process";
  CUipcMemHandle handle{};
  ASSERT_TRUE(from_hex(hex, &handle, sizeof handle));
  Env::get();
  const int opens = static_cast<int>(env_u64("FW_IPC_OPENS", 1));
  CUdeviceptr p = 0;
  if (env_u64("FW_IPC_EXPECT_GONE")) {  // the exporter freed it: refused, at once
    const auto start = std::chrono::steady_clock::now();
    EXPECT_NE(CUDA_SUCCESS, cuIpcOpenMemHandle(&p, handle, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    return;
  }
  CU_OK(cuIpcOpenMemHandle(&p, handle, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS));
  for (int i = 1; i < opens; ++i) {
    CUdeviceptr again = 0;
    CU_OK(cuIpcOpenMemHandle(&again, handle, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS));
    EXPECT_EQ(p, again) << "a second open in the same context must return the same pointer";
  }
  const uint64_t bytes = env_u64("FW_IPC_BYTES");
  EXPECT_EQ(env_u64("FW_IPC_HASH"), device_hash(p, bytes)) << "the other process reads other bytes";
  // A host copy reads the same (a loader's DtoH of a received tensor).
  std::vector<uint8_t> head(4096);
  CU_OK(cuMemcpyDtoH(head.data(), p, head.size()));
  if (const uint64_t write_bytes = env_u64("FW_IPC_WRITE_BYTES")) {
    CUdeviceptr at = p + env_u64("FW_IPC_WRITE_AT");
    uint64_t n = write_bytes;
    uint32_t v = static_cast<uint32_t>(env_u64("FW_IPC_WRITE_VALUE"));
    void* params[] = {&at, &n, &v};
    // Under neuzip the write is still queued at the close (behind a host
    // function released 200 ms later): neuzip's close waits for it.
    const bool held = Env::get().neuzip() && env_u64("FW_IPC_CLOSE_QUEUED");
    static std::atomic<int> go{0};
    CUstream s = nullptr;
    CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    if (held) {
      CU_OK(cuLaunchHostFunc(
          s,
          [](void*) {
            while (go.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          },
          nullptr));
    }
    CU_OK(cuLaunchKernel(Env::get().fn("fill_bytes"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
    std::thread release([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      go = 1;
    });
    // Whether cuIpcCloseMemHandle waits for queued work is not documented
    // (the simulator does not wait, the strict reading): a valid program
    // waits first.
    if (!held) CU_OK(cuCtxSynchronize());
    for (int i = 0; i < opens; ++i) EXPECT_EQ(CUDA_SUCCESS, cuIpcCloseMemHandle(p));
    release.join();
    CU_OK(cuCtxSynchronize());
    CU_OK(cuStreamDestroy(s));
    EXPECT_NE(CUDA_SUCCESS, cuIpcCloseMemHandle(p)) << "closed more often than opened";
    return;
  }
  for (int i = 0; i < opens; ++i) CU_OK(cuIpcCloseMemHandle(p));
  EXPECT_NE(CUDA_SUCCESS, cuIpcCloseMemHandle(p)) << "closed more often than opened";
  CU_OK(cuCtxSynchronize());
}

CUipcMemHandle handle_of(CUdeviceptr p) {
  CUipcMemHandle h{};
  EXPECT_EQ(CUDA_SUCCESS, cuIpcGetMemHandle(&h, p));
  return h;
}

// A weight the runtime compressed is shared: the other process reads it
// whole, writes into it, and this process sees that write; from then on
// nothing of it is compressed again.
TEST(Ipc, ACompressedWeightSharedReadsTheSameInTheOtherProcessAndBack) {
  const auto data = weights(6 * kMiB, 71);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  int capable = 0;
  CU_OK(cuPointerGetAttribute(&capable, CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE, w));
  EXPECT_EQ(1, capable);
  const CUipcMemHandle h = handle_of(w);
  const uint64_t compressed_after_share = Env::get().stats().bytes_original_compressed;
  EXPECT_EQ(0u, compressed_after_share) << "the shared weight must be decoded";
  const CUipcMemHandle again = handle_of(w);
  EXPECT_EQ(0, std::memcmp(&h, &again, sizeof h)) << "the same allocation, the same handle";
  const CUipcMemHandle inside = handle_of(w + 3 * kMiB + 7);
  EXPECT_EQ(0, std::memcmp(&h, &inside, sizeof h)) << "a pointer inside it names the whole allocation";
  const size_t at = 3 * kMiB + 123;
  std::string out;
  const int status = run_child(h, {"FW_IPC_BYTES=" + std::to_string(data.size()),
                                   "FW_IPC_HASH=" + std::to_string(host_hash(data.data(), data.size())),
                                   "FW_IPC_WRITE_AT=" + std::to_string(at), "FW_IPC_WRITE_BYTES=4096",
                                   "FW_IPC_WRITE_VALUE=90", "FW_IPC_CLOSE_QUEUED=1"},
                               &out);
  ASSERT_EQ(0, status) << out;
  auto want = data;
  std::memset(want.data() + at, 90, 4096);
  EXPECT_EQ(host_hash(want.data(), want.size()), device_hash(w, data.size())) << "the other process's write";
  std::vector<uint8_t> back(data.size());
  CU_OK(cuMemcpyDtoH(back.data(), w, back.size()));
  EXPECT_TRUE(back == want);
  // Loading it again, or a framework declaring it a weight, compresses nothing.
  upload(w, data, data.size());
  Env::get().declare(w, data.size(), NZ_TAG_BF16);
  Env::get().flush();
  EXPECT_EQ(0u, Env::get().stats().bytes_original_compressed) << "shared memory was compressed again";
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CU_OK(cuMemFree(w));
}

// A torch.multiprocessing producer shares a tensor its stream is still
// writing: the handle is taken right after the kernel is queued. What the
// kernel writes must be what the other process reads (once this one
// synchronised, as PyTorch's producer does through its IPC event).
TEST(Ipc, SharedWhileItsStreamStillWritesIt) {
  const auto data = weights(4 * kMiB, 72);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(2 * kMiB);
  // Read once, so that it is staged: the launch below then queues no decode
  // whose wait would drain the stream before the handle is taken.
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CUstream s = nullptr;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  static std::atomic<int> go{0};
  go = 0;
  CU_OK(cuLaunchHostFunc(
      s,
      [](void*) {
        while (go.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      },
      nullptr));
  CUdeviceptr at = w + kMiB;
  uint64_t n = kMiB;
  uint32_t v = 17;
  void* params[] = {&at, &n, &v};
  CU_OK(cuLaunchKernel(Env::get().fn("fill_bytes"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  std::thread release([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    go = 1;
  });
  const CUipcMemHandle h = handle_of(w);
  release.join();
  CU_OK(cuStreamSynchronize(s));
  auto want = data;
  std::memset(want.data() + kMiB, 17, kMiB);
  std::string out;
  ASSERT_EQ(0, run_child(h, {"FW_IPC_BYTES=" + std::to_string(data.size()),
                             "FW_IPC_HASH=" + std::to_string(host_hash(want.data(), want.size()))},
                         &out))
      << out;
  EXPECT_EQ(host_hash(want.data(), want.size()), device_hash(w, data.size()));
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuMemFree(w));
}

// The other process opens twice (two tensors of one segment: PyTorch caches
// by handle, other programs may not), gets one pointer, closes twice.
TEST(Ipc, OpenedTwiceInOneContextIsOneMappingClosedTwice) {
  const auto data = weights(3 * kMiB, 73);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  const CUipcMemHandle h = handle_of(w);
  std::string out;
  ASSERT_EQ(0, run_child(h, {"FW_IPC_BYTES=" + std::to_string(data.size()),
                             "FW_IPC_HASH=" + std::to_string(host_hash(data.data(), data.size())), "FW_IPC_OPENS=2"},
                         &out))
      << out;
  // neuzip switched off in the other process (NEUZIP=0): it still opens
  // what neuzip shared here.
  ASSERT_EQ(0, run_child(h, {"FW_IPC_BYTES=" + std::to_string(data.size()),
                             "FW_IPC_HASH=" + std::to_string(host_hash(data.data(), data.size())), "NEUZIP=0"},
                         &out))
      << out;
  CU_OK(cuMemFree(w));
  // Freed here: the other process is refused at once, not after a timeout.
  ASSERT_EQ(0, run_child(h, {"FW_IPC_EXPECT_GONE=1"}, &out)) << out;
}

// Two threads share the same allocation at once (two tensors of one
// segment sent from two threads): one copy, one handle, both succeed.
TEST(Ipc, TwoThreadsSharingOneAllocationGetOneHandle) {
  const auto data = weights(6 * kMiB, 76);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(4 * kMiB);
  CUipcMemHandle a{}, b{};
  CUresult ra = CUDA_ERROR_UNKNOWN, rb = CUDA_ERROR_UNKNOWN;
  std::thread other([&] {
    cuCtxSetCurrent(Env::get().ctx);
    rb = cuIpcGetMemHandle(&b, w + 5 * kMiB);
  });
  ra = cuIpcGetMemHandle(&a, w);
  other.join();
  ASSERT_EQ(CUDA_SUCCESS, ra);
  ASSERT_EQ(CUDA_SUCCESS, rb);
  EXPECT_EQ(0, std::memcmp(&a, &b, sizeof a));
  std::string out;
  ASSERT_EQ(0, run_child(a, {"FW_IPC_BYTES=" + std::to_string(data.size()),
                             "FW_IPC_HASH=" + std::to_string(host_hash(data.data(), data.size()))},
                         &out))
      << out;
  CU_OK(cuMemFree(w));
}

// The driver refuses to open a handle in the process that made it.
TEST(Ipc, TheProcessThatSharedItCannotOpenIt) {
  const auto data = weights(3 * kMiB, 74);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  const CUipcMemHandle h = handle_of(w);
  CUdeviceptr p = 0;
  EXPECT_EQ(CUDA_ERROR_INVALID_CONTEXT, cuIpcOpenMemHandle(&p, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS));
  EXPECT_EQ(host_hash(data.data(), data.size()), device_hash(w, data.size()));
  CU_OK(cuMemFree(w));
}

// Sharing one weight leaves the others compressed and every byte right;
// memory freed by the sharer goes (its pages come back here).
TEST(Ipc, OtherWeightsStayCompressedAndTheSharedOneIsFreed) {
  std::vector<std::unique_ptr<Weight>> ws;
  for (uint32_t i = 0; i < 4; ++i) ws.push_back(std::make_unique<Weight>(4 * kMiB, 80 + i));
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(12 * kMiB);
  const CUipcMemHandle h = handle_of(ws[1]->dev);
  if (Env::get().neuzip()) {
    EXPECT_GE(Env::get().stats().bytes_original_compressed, 3 * 4 * kMiB - 2 * kMiB)
        << "sharing one weight must leave the others compressed";
  }
  std::string out;
  ASSERT_EQ(0, run_child(h, {"FW_IPC_BYTES=" + std::to_string(ws[1]->host.size()),
                             "FW_IPC_HASH=" + std::to_string(ws[1]->hash())},
                         &out))
      << out;
  for (auto& w : ws) EXPECT_EQ(w->hash(), device_hash(w->dev, w->host.size()));
  const size_t before = free_memory();
  ws[1].reset();
  EXPECT_GE(free_memory(), before + 4 * kMiB) << "the shared allocation's memory did not come back";
  for (auto& w : ws)
    if (w) EXPECT_EQ(w->hash(), device_hash(w->dev, w->host.size()));
}

// A CUDA graph captured over a weight (vLLM's decode graphs) keeps replaying
// right after the weight is shared, and reads what the other process wrote;
// other weights evicted around it still come back under the budget.
TEST(Ipc, AGraphOverASharedWeightReplaysItAndTheOtherProcesssWrite) {
  std::vector<std::unique_ptr<Weight>> others;
  for (uint32_t i = 0; i < 3; ++i) others.push_back(std::make_unique<Weight>(4 * kMiB, 90 + i));
  const auto data = weights(4 * kMiB, 95);
  CUdeviceptr w = alloc(data.size());
  upload(w, data, data.size());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
  CUstream s = nullptr;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64);
  uint64_t n = data.size();
  void* params[] = {&w, &n, &out};
  CU_OK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  CU_OK(cuLaunchKernel(Env::get().fn("sum_bytes"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  CUgraph g = nullptr;
  CU_OK(cuStreamEndCapture(s, &g));
  CUgraphExec exec = nullptr;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  auto replay = [&] {
    uint64_t got = 0;
    EXPECT_EQ(CUDA_SUCCESS, cuGraphLaunch(exec, s));
    EXPECT_EQ(CUDA_SUCCESS, cuStreamSynchronize(s));
    EXPECT_EQ(CUDA_SUCCESS, cuMemcpyDtoH(&got, out, sizeof got));
    return got;
  };
  EXPECT_EQ(host_hash(data.data(), data.size()), replay());
  const CUipcMemHandle h = handle_of(w);
  EXPECT_EQ(host_hash(data.data(), data.size()), replay());
  std::string text;
  ASSERT_EQ(0, run_child(h, {"FW_IPC_BYTES=" + std::to_string(data.size()),
                             "FW_IPC_HASH=" + std::to_string(host_hash(data.data(), data.size())),
                             "FW_IPC_WRITE_AT=0", "FW_IPC_WRITE_BYTES=65536", "FW_IPC_WRITE_VALUE=3"},
                         &text))
      << text;
  auto want = data;
  std::memset(want.data(), 3, 65536);
  for (auto& o : others) EXPECT_EQ(o->hash(), device_hash(o->dev, o->host.size()));
  EXPECT_EQ(host_hash(want.data(), want.size()), replay());
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuMemFree(out));
  CU_OK(cuMemFree(w));
}

}  // namespace
}  // namespace fw
