#include "fw_env.h"

#include <dlfcn.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "fw_hash.h"

namespace fw {

std::string error_name(CUresult r) {
  const char* s = nullptr;
  cuGetErrorName(r, &s);
  return s != nullptr ? s : std::to_string(static_cast<int>(r));
}

std::vector<uint8_t> weights(size_t bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<uint8_t> out(bytes);
  for (size_t i = 0; i + 1 < bytes; i += 2) {
    const float f = normal(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const uint16_t bf = static_cast<uint16_t>(bits >> 16);
    std::memcpy(&out[i], &bf, 2);
  }
  return out;
}

namespace {
std::string env_or_die(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) {
    std::fprintf(stderr, "%s is not set\n", name);
    std::abort();
  }
  return v;
}
}  // namespace

Env::Env() {
  module_path = env_or_die("FW_MODULE");
  small_module_path = env_or_die("FW_SMALL_MODULE");
  if (cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
      cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
    std::fprintf(stderr, "no CUDA device\n");
    std::abort();
  }
  reload_module();
}

void Env::reload_module() {
  if (cuModuleLoad(&mod, module_path.c_str()) != CUDA_SUCCESS) {
    std::fprintf(stderr, "cannot load %s\n", module_path.c_str());
    std::abort();
  }
}

Env& Env::get() {
  static Env env;
  return env;
}

CUfunction Env::fn(const char* name) const {
  CUfunction f = nullptr;
  EXPECT_EQ(CUDA_SUCCESS, cuModuleGetFunction(&f, mod, name)) << name;
  return f;
}

bool Env::neuzip() const {
  using StatsFn = int (*)(nz_runtime_stats*, size_t);
  auto f = reinterpret_cast<StatsFn>(dlsym(RTLD_DEFAULT, "nz_stats"));
  nz_runtime_stats s{};
  return f != nullptr && f(&s, sizeof s) == NZ_RT_OK;
}

nz_runtime_stats Env::stats() const {
  using StatsFn = int (*)(nz_runtime_stats*, size_t);
  nz_runtime_stats s{};
  if (auto f = reinterpret_cast<StatsFn>(dlsym(RTLD_DEFAULT, "nz_stats"))) f(&s, sizeof s);
  return s;
}

void Env::flush() const {
  using FlushFn = int (*)();
  if (auto f = reinterpret_cast<FlushFn>(dlsym(RTLD_DEFAULT, "nz_flush"))) f();
}

bool Env::declare(CUdeviceptr p, size_t bytes, int dtype) const {
  using TagFn = int (*)(uint64_t, size_t, int);
  auto f = reinterpret_cast<TagFn>(dlsym(RTLD_DEFAULT, "nz_tag"));
  return f != nullptr && f(p, bytes, dtype) == NZ_RT_OK;
}

bool Env::undeclare(CUdeviceptr p, size_t bytes) const {
  using UntagFn = int (*)(uint64_t, size_t);
  auto f = reinterpret_cast<UntagFn>(dlsym(RTLD_DEFAULT, "nz_untag"));
  return f != nullptr && f(p, bytes) == NZ_RT_OK;
}

CUdeviceptr alloc(size_t bytes) {
  Env::get();
  CUdeviceptr p = 0;
  EXPECT_EQ(CUDA_SUCCESS, cuMemAlloc(&p, bytes)) << bytes;
  return p;
}

void upload(CUdeviceptr dst, const std::vector<uint8_t>& data, size_t piece) {
  for (size_t off = 0; off < data.size(); off += piece) {
    const size_t n = std::min(piece, data.size() - off);
    ASSERT_EQ(CUDA_SUCCESS, cuMemcpyHtoD(dst + off, data.data() + off, n));
  }
}

uint64_t launch_and_read(CUfunction f, std::vector<void*> params, CUdeviceptr out, CUstream s,
                         CUresult* launch_result) {
  CUresult r = cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s, params.data(), nullptr);
  if (launch_result != nullptr) *launch_result = r;
  EXPECT_EQ(CUDA_SUCCESS, r) << error_name(r);
  EXPECT_EQ(CUDA_SUCCESS, cuStreamSynchronize(s));
  uint64_t v = 0;
  EXPECT_EQ(CUDA_SUCCESS, cuMemcpyDtoH(&v, out, 8));
  return v;
}

void queue_sum(CUdeviceptr p, uint64_t n, CUdeviceptr out, CUstream s) {
  void* params[] = {&p, &n, &out};
  const CUresult r = cuLaunchKernel(Env::get().fn("sum_bytes"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr);
  EXPECT_EQ(CUDA_SUCCESS, r) << error_name(r);
}

uint64_t read_word(CUdeviceptr out) {
  uint64_t v = 0;
  EXPECT_EQ(CUDA_SUCCESS, cuMemcpyDtoH(&v, out, sizeof v));
  return v;
}

uint64_t device_hash(CUdeviceptr p, uint64_t n, CUresult* launch_result) {
  static CUdeviceptr out = alloc(64);
  return launch_and_read(Env::get().fn("sum_bytes"), {&p, &n, &out}, out, nullptr, launch_result);
}

uint64_t host_hash(const uint8_t* p, uint64_t n) { return hash_bytes(p, n); }

size_t free_memory() {
  Env::get();
  size_t free = 0, total = 0;
  EXPECT_EQ(CUDA_SUCCESS, cuMemGetInfo(&free, &total));
  return free;
}

std::string capture_stderr(const std::function<void()>& body) {
  char path[] = "/tmp/fw_stderr_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) {
    body();
    return {};
  }
  std::fflush(stderr);
  const int saved = dup(2);
  dup2(fd, 2);
  body();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  close(fd);
  unlink(path);
  return text;
}

}  // namespace fw
