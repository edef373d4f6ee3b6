// Processes forked after CUDA is initialised: PyTorch's DataLoader workers
// (fork is the default start method on Linux), Inductor's compile-worker pool,
// a Python `os.fork()`. The driver cannot be used in such a child: every call,
// cuInit included, returns CUDA_ERROR_NOT_INITIALIZED (Triton's is_active()
// probes exactly that). The child inherits neuzip's state as it was at the
// fork, including locks other threads held then, but not those threads (the
// look-ahead stager, the program's other launching threads). So in the child
// neuzip must pass every call straight to the driver, and its exit (atexit
// handlers: the exit report, the stager's stop) must neither wait for what
// is not there nor print the parent's report again. The parent goes on as if
// nothing happened.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fw_env.h"

#include "../../interpose/hook_list.h"

namespace fw {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// Every driver entry point libneuzip.so wraps (its exported symbols).
constexpr const char* kHookedSymbols[] = {
#define NZ_HOOKED_SYMBOL(id, exported, request, first, kind) exported,
    NZ_HOOK_LIST(NZ_HOOKED_SYMBOL)
#undef NZ_HOOKED_SYMBOL
};

// What a forked child does with the driver and with neuzip's C API; returns
// the number of answers that are not what the real driver gives there.
int use_cuda_in_child(CUdeviceptr weight, size_t bytes, CUfunction sum, CUgraph graph = nullptr,
                      CUstream stream = nullptr) {
  int wrong = 0;
  auto expect = [&](const char* what, CUresult got) {
    if (got != CUDA_ERROR_NOT_INITIALIZED) {
      std::fprintf(stderr, "child: %s returned %d, not CUDA_ERROR_NOT_INITIALIZED\n", what, static_cast<int>(got));
      ++wrong;
    }
  };
  expect("cuInit", cuInit(0));
  int count = 0;
  expect("cuDeviceGetCount", cuDeviceGetCount(&count));
  CUdeviceptr p = 0;
  expect("cuMemAlloc", cuMemAlloc(&p, 4 * kMiB));
  CUdeviceptr out = weight;  // any address: the launch must not get as far as the device
  uint64_t n = bytes;
  void* params[] = {&weight, &n, &out};
  expect("cuLaunchKernel", cuLaunchKernel(sum, 1, 1, 1, 1, 1, 1, 0, nullptr, params, nullptr));
  std::vector<uint8_t> host(4096);
  expect("cuMemcpyDtoH", cuMemcpyDtoH(host.data(), weight, host.size()));
  expect("cuMemcpyHtoD", cuMemcpyHtoD(weight, host.data(), host.size()));
  size_t free_bytes = 0, total = 0;
  expect("cuMemGetInfo", cuMemGetInfo(&free_bytes, &total));
  expect("cuCtxSynchronize", cuCtxSynchronize());
  expect("cuMemFree", cuMemFree(weight));
  // Handles the parent made (Python's GC in a worker destroying a CUDA graph).
  if (graph) expect("cuGraphDestroy", cuGraphDestroy(graph));
  if (stream) expect("cuStreamDestroy", cuStreamDestroy(stream));
  // neuzip's own API (the Python module's calls): nothing to serve here.
  using StatsFn = int (*)(nz_runtime_stats*, size_t);
  using FlushFn = int (*)();
  if (auto stats = reinterpret_cast<StatsFn>(dlsym(RTLD_DEFAULT, "nz_stats"))) {
    nz_runtime_stats s{};
    if (stats(&s, sizeof s) == NZ_RT_OK) {
      std::fprintf(stderr, "child: nz_stats answered with the parent's figures\n");
      ++wrong;
    }
  }
  if (auto flush = reinterpret_cast<FlushFn>(dlsym(RTLD_DEFAULT, "nz_flush"))) {
    if (flush() == NZ_RT_OK) {
      std::fprintf(stderr, "child: nz_flush compressed in a child\n");
      ++wrong;
    }
  }
  // The parent's trace file is not the child's to hold (a child that
  // outlived the parent would keep its lock from the next run).
  if (const char* trace = std::getenv("NEUZIP_TRACE")) {
    char target[4096];
    for (int fd = 3; fd < 1024; ++fd) {
      const std::string link = "/proc/self/fd/" + std::to_string(fd);
      const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      if (std::string(target) == trace) {
        std::fprintf(stderr, "child: holds the parent's trace file open (fd %d)\n", fd);
        ++wrong;
      }
    }
  }
  return wrong;
}

struct ChildResult {
  bool exited = false;  // false: killed after the timeout (hung) or by a signal
  int status = -1;      // exit status, or the signal
  std::string err;      // what it wrote to stderr
};

// Forks; the child redirects its stderr to a file, runs `body` and leaves
// through std::exit(body's result), so every atexit handler runs as in a
// child that returns from main. A child still running after `timeout` is
// killed and reported as hung.
template <typename Body>
ChildResult run_forked(Body body, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  char path[] = "/tmp/nz-fork-child-XXXXXX";
  const int fd = mkstemp(path);
  ChildResult res;
  if (fd < 0) return res;
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, STDERR_FILENO);
    std::exit(body());
  }
  close(fd);
  if (pid < 0) {
    unlink(path);
    return res;
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pid_t done = 0;
  while ((done = waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (done == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    res.status = -2;
  } else if (WIFEXITED(status)) {
    res.exited = true;
    res.status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    res.status = WTERMSIG(status);
  }
  std::ifstream in(path);
  res.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  unlink(path);
  return res;
}

std::string describe(const ChildResult& r) {
  if (r.exited) return "exit status " + std::to_string(r.status) + "; stderr:\n" + r.err;
  if (r.status == -2) return "hung (killed after the timeout); stderr:\n" + r.err;
  return "killed by signal " + std::to_string(r.status) + "; stderr:\n" + r.err;
}

// A DataLoader worker's life: forked from a process whose weights neuzip
// holds compressed, it meets an unusable driver and exits normally.
TEST(Fork, ChildFindsTheDriverUnusableAndExitsQuietly) {
  Weight w(8 * kMiB, 90);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
  ASSERT_EQ(device_hash(w.dev, w.host.size()), w.hash());
  const CUfunction sum = Env::get().fn("sum_bytes");
  // A graph captured over the weight and a stream, made before the fork.
  CUstream s = nullptr;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64);
  uint64_t n = w.host.size();
  CUdeviceptr p = w.dev;
  void* params[] = {&p, &n, &out};
  CUgraph graph = nullptr;
  CU_OK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  CU_OK(cuLaunchKernel(sum, 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  CU_OK(cuStreamEndCapture(s, &graph));
  const ChildResult child = run_forked([&] { return use_cuda_in_child(w.dev, w.host.size(), sum, graph, s); });
  EXPECT_TRUE(child.exited && child.status == 0) << describe(child);
  // The exit report (NEUZIP_REPORT=1 in this test's environment) is the
  // parent's; a child that printed it would report the parent's figures
  // twice. A pass-through child has nothing to say at all.
  EXPECT_EQ(child.err.find("neuzip:"), std::string::npos) << child.err;
  // The parent goes on: its graph and stream are its own, its weight is
  // still compressed and reads right.
  CUgraphExec exec = nullptr;
  CU_OK(cuGraphInstantiate(&exec, graph, 0));
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  uint64_t replayed = 0;
  CU_OK(cuMemcpyDtoH(&replayed, out, 8));
  EXPECT_EQ(replayed, w.hash());
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(graph));
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuMemFree(out));
  EXPECT_EQ(device_hash(w.dev, w.host.size()), w.hash());
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(8 * kMiB);
}

// Forks while another thread of the program keeps launching on weights over
// the budget (so the runtime's lock, its stager and its evictions are busy at
// the moment of the fork): no child may hang on a lock that a thread it does
// not have held, or crash on state that thread was changing.
TEST(Fork, ChildrenOfABusyProgramNeverHang) {
  Weight a(6 * kMiB, 91), b(6 * kMiB, 92);
  Env::get().flush();
  const CUfunction sum = Env::get().fn("sum_bytes");
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, wrong{0};
  std::thread busy([&] {
    cuCtxSetCurrent(Env::get().ctx);
    CUstream s = nullptr;
    cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
    CUdeviceptr out = alloc(64);
    while (!stop.load()) {
      for (const Weight* w : {&a, &b}) {
        uint64_t n = w->host.size();
        CUdeviceptr p = w->dev;
        void* params[] = {&p, &n, &out};
        if (cuLaunchKernel(sum, 1, 1, 1, 1, 1, 1, 0, s, params, nullptr) != CUDA_SUCCESS) ++wrong;
        uint64_t got = 0;
        if (cuMemcpyDtoHAsync(&got, out, 8, s) != CUDA_SUCCESS || cuStreamSynchronize(s) != CUDA_SUCCESS ||
            got != w->hash())
          ++wrong;
        ++reads;
      }
    }
    cuStreamDestroy(s);
    cuMemFree(out);
  });
  constexpr int kChildren = 12;
  int ok = 0;
  for (int i = 0; i < kChildren; ++i) {
    // Fork mid-work: after 1 to 3 more reads of the busy thread.
    const int before = reads.load();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (reads.load() < before + 1 + i % 3 && wrong.load() == 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (std::chrono::steady_clock::now() >= until) {
      ADD_FAILURE() << "the busy thread stopped reading";
      break;
    }
    const ChildResult child = run_forked([&] { return use_cuda_in_child(a.dev, a.host.size(), sum); },
                                         std::chrono::seconds(20));
    EXPECT_TRUE(child.exited && child.status == 0) << "child " << i << ": " << describe(child);
    ok += child.exited && child.status == 0;
    if (!child.exited) break;  // one hang says it (and each costs the timeout)
  }
  stop = true;
  busy.join();
  EXPECT_EQ(ok, kChildren) << "children that exited cleanly";
  EXPECT_EQ(wrong.load(), 0) << "the parent's reads went wrong while it forked";
  EXPECT_GT(reads.load(), kChildren);
  EXPECT_EQ(device_hash(a.dev, a.host.size()), a.hash());
  EXPECT_EQ(device_hash(b.dev, b.host.size()), b.hash());
}

// Every entry point neuzip wraps, called in a forked child with zeroed
// arguments (the driver answers before it reads them there): each must come
// back, with what the driver says. A wrapper that took a lock, touched the
// runtime or read its arguments before passing through would hang or crash
// the child. (Calling through a pointer of another arity is the x86-64
// convention's business: the unused zero registers are ignored.)
TEST(Fork, EveryWrappedEntryPointPassesThroughInTheChild) {
  Weight w(4 * kMiB, 93);
  Env::get().flush();
  const ChildResult child = run_forked([] {
    using AnyEntry = CUresult (*)(uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t,
                                  uintptr_t, uintptr_t, uintptr_t, uintptr_t, uintptr_t);
    // These answer without an initialised driver.
    const std::string works_uninitialised[] = {"cuGetProcAddress", "cuGetProcAddress_v2", "cuDriverGetVersion",
                                               "cuGetErrorName", "cuGetErrorString"};
    int wrong = 0, called = 0;
    for (const char* name : kHookedSymbols) {
      if (name == nullptr || std::find(std::begin(works_uninitialised), std::end(works_uninitialised), name) !=
                                 std::end(works_uninitialised))
        continue;
      auto fn = reinterpret_cast<AnyEntry>(dlsym(RTLD_DEFAULT, name));
      if (fn == nullptr) continue;  // not in this driver
      alarm(10);                    // a hang kills the child: the parent reports it
      const CUresult r = fn(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
      ++called;
      if (r != CUDA_ERROR_NOT_INITIALIZED && r != CUDA_ERROR_NOT_SUPPORTED) {
        std::fprintf(stderr, "child: %s returned %d\n", name, static_cast<int>(r));
        ++wrong;
      }
    }
    alarm(0);
    std::fprintf(stderr, "child: called %d entry points\n", called);
    return wrong != 0 ? 1 : called < 100 ? 2 : 0;
  });
  EXPECT_TRUE(child.exited && child.status == 0) << describe(child);
  EXPECT_EQ(device_hash(w.dev, w.host.size()), w.hash());
}

// A helper process of the program that only asks for the device (Inductor's
// compile workers, a `torch.cuda.is_available()` check): under
// NEUZIP_REPORT=1 (this test's environment) it has nothing to report, and
// says nothing, instead of a report of zeros per worker.
TEST(Processes, AHelperThatOnlyAsksForTheDeviceSaysNothingAtExit) {
  FILE* p = popen(
      "env -u NEUZIP_HOOK_COUNTS python3 -c 'import ctypes; c = ctypes.CDLL(\"libcuda.so.1\"); "
      "n = ctypes.c_int(0); print(c.cuInit(0), c.cuDeviceGetCount(ctypes.byref(n)), n.value)' 2>&1",
      "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  // A sanitizer build's driver cannot be loaded into an uninstrumented Python.
  if (status != 0 && out.find("static TLS block") != std::string::npos) GTEST_SKIP() << out;
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(out.rfind("0 0 ", 0), 0u) << "the helper could not ask for the device: " << out;
  EXPECT_EQ(out.find("neuzip:"), std::string::npos) << out;
}

}  // namespace
}  // namespace fw
