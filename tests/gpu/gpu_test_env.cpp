#include "gpu_test_env.h"

#include "gpu/backends.h"
#include "nzsim.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace nz::gpu::test {
namespace {

std::string& reason_storage() {
  static std::string reason;
  return reason;
}

std::string& codec_error_storage() {
  static std::string reason;
  return reason;
}

void check(const DriverApi& api, CUresult r, const char* what) {
  ASSERT_EQ(r, CUDA_SUCCESS) << what << ": " << describe(api, r);
}

}  // namespace

GpuEnv* GpuEnv::get() {
  static GpuEnv* env = [] {
    auto* e = new GpuEnv();  // lives for the process: the context outlives every test
    std::string error;
    if (!e->session_.open(error)) {
      reason_storage() = fmt::format("no usable CUDA driver/device ({}); GPU codec tests skipped", error);
      delete e;
      return static_cast<GpuEnv*>(nullptr);
    }
    // A device without a working codec is a failure, not a skip.
    if (!e->open(error)) {
      codec_error_storage() = fmt::format("device {} has no working codec: {}", e->session_.device_name(), error);
      delete e;
      return static_cast<GpuEnv*>(nullptr);
    }
    return e;
  }();
  return env;
}

const std::string& GpuEnv::skip_reason() { return reason_storage(); }

// NZ_GPU_TEST_CUDA_EMU_MODULE (a path, simulator only): the CUDA backend on
// the emulated kernels of tests/gpu/emu instead of whatever create() picks.
std::unique_ptr<DeviceCodec> GpuEnv::make_codec(std::string& error) {
  const char* emu = std::getenv("NZ_GPU_TEST_CUDA_EMU_MODULE");
  if (emu == nullptr || *emu == '\0') return DeviceCodec::create(api(), error);
  nzsim_module_ref ref{};
  std::memcpy(ref.magic, NZSIM_MODULE_REF_MAGIC, sizeof(ref.magic));
  std::snprintf(ref.path, sizeof(ref.path), "%s", emu);
  CUdevice dev = 0;
  api().cuCtxGetDevice(&dev);
  emulated_cuda_ = true;
  return create_cuda_codec_from_image(api(), dev, &ref, error);
}

const std::string& GpuEnv::codec_error() { return codec_error_storage(); }

bool GpuEnv::open(std::string& error) {
  codec_ = make_codec(error);
  if (!codec_) return false;
  CUresult r = session_.api().cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING);
  if (r != CUDA_SUCCESS) {
    error = describe(session_.api(), r);
    return false;
  }
  return true;
}

DeviceBuffer GpuEnv::alloc(size_t bytes) {
  DeviceBuffer b;
  check(api(), b.allocate(api(), bytes), "cuMemAlloc");
  return b;
}

DeviceBuffer GpuEnv::upload(const std::vector<uint8_t>& bytes) {
  DeviceBuffer b = alloc(bytes.size());
  if (!bytes.empty()) check(api(), api().cuMemcpyHtoD(b.get(), bytes.data(), bytes.size()), "cuMemcpyHtoD");
  return b;
}

std::vector<uint8_t> GpuEnv::download(CUdeviceptr ptr, size_t bytes) {
  std::vector<uint8_t> out(bytes);
  if (bytes) check(api(), api().cuMemcpyDtoH(out.data(), ptr, bytes), "cuMemcpyDtoH");
  return out;
}

CUresult GpuEnv::decode(const std::vector<uint8_t>& compressed, size_t out_bytes, std::vector<uint8_t>& out,
                        uint32_t& status) {
  // The status word lives in pinned host memory, mapped into the device's
  // address space: it stays readable after a trap has killed the context.
  void* host_status = nullptr;
  CUresult r = api().cuMemAllocHost(&host_status, sizeof(uint32_t));
  if (r != CUDA_SUCCESS) return r;
  *static_cast<volatile uint32_t*>(host_status) = 0;
  DeviceBuffer src = upload(compressed);
  DeviceBuffer dst = alloc(out_bytes);
  r = codec().decode(stream(), src.get(), compressed.size(), dst.get(), out_bytes,
                     reinterpret_cast<CUdeviceptr>(host_status));
  if (r == CUDA_SUCCESS) r = api().cuStreamSynchronize(stream());
  status = *static_cast<volatile uint32_t*>(host_status);
  if (r == CUDA_SUCCESS) out = download(dst.get(), out_bytes);
  api().cuMemFreeHost(host_status);
  if (r != CUDA_SUCCESS) {
    // Buffers of a dead context must not be freed through it.
    (void)src.release();
    (void)dst.release();
  }
  return r;
}

CUresult GpuEnv::encode(const std::vector<uint8_t>& input, uint64_t count, const nz_options& opts,
                        std::vector<uint8_t>& out) {
  DeviceBuffer src = upload(input);
  const size_t cap = nz_compress_bound(count, &opts);
  DeviceBuffer dst = alloc(cap);
  DeviceBuffer len = alloc(sizeof(uint64_t));
  const size_t ws_bytes = codec().encode_workspace_bytes(count, opts);
  DeviceBuffer ws = alloc(ws_bytes);
  CUresult r = codec().encode(stream(), src.get(), count, opts, dst.get(), cap, len.get(), ws.get(), ws_bytes);
  if (r == CUDA_SUCCESS) r = api().cuStreamSynchronize(stream());
  if (r != CUDA_SUCCESS) return r;
  uint64_t n = 0;
  std::vector<uint8_t> len_bytes = download(len.get(), sizeof(n));
  std::memcpy(&n, len_bytes.data(), sizeof(n));
  if (n > cap) return CUDA_ERROR_UNKNOWN;
  out = download(dst.get(), n);
  return CUDA_SUCCESS;
}

uint64_t GpuEnv::hash(CUdeviceptr data, size_t len) {
  DeviceBuffer out = alloc(sizeof(uint64_t));
  CUresult r = codec().hash(stream(), data, len, out.get());
  if (r == CUDA_SUCCESS) r = api().cuStreamSynchronize(stream());
  EXPECT_EQ(r, CUDA_SUCCESS) << describe(api(), r);
  uint64_t h = 0;
  std::vector<uint8_t> bytes = download(out.get(), sizeof(h));
  std::memcpy(&h, bytes.data(), sizeof(h));
  return h;
}

std::vector<uint8_t> cpu_compress(const std::vector<uint8_t>& input, uint64_t count, const nz_options& opts,
                                  nz_status& status) {
  std::vector<uint8_t> out(nz_compress_bound(count, &opts));
  size_t len = 0;
  status = nz_compress(input.data(), count, &opts, out.data(), out.size(), &len);
  out.resize(status == NZ_OK ? len : 0);
  return out;
}

std::vector<uint8_t> cpu_decompress(const std::vector<uint8_t>& compressed, nz_status& status) {
  nz_info info{};
  status = nz_inspect(compressed.data(), compressed.size(), &info);
  if (status != NZ_OK) return {};
  std::vector<uint8_t> out(info.original_bytes);
  status = nz_decompress(compressed.data(), compressed.size(), out.data(), out.size(), 1);
  return out;
}

}  // namespace nz::gpu::test
