#include "gpu/gpu_bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>

#include "gpu/device_buffer.h"

namespace nz::gpu {
namespace {

class Event {
 public:
  explicit Event(const DriverApi& api) : api_(api) { ok_ = api_.cuEventCreate(&event_, CU_EVENT_DEFAULT) == CUDA_SUCCESS; }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() {
    if (ok_) api_.cuEventDestroy(event_);
  }
  CUevent get() const { return event_; }
  bool ok() const { return ok_; }

 private:
  const DriverApi& api_;
  CUevent event_ = nullptr;
  bool ok_ = false;
};

class Stream {
 public:
  explicit Stream(const DriverApi& api) : api_(api) { ok_ = api_.cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS; }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    if (ok_) api_.cuStreamDestroy(stream_);
  }
  CUstream get() const { return stream_; }
  bool ok() const { return ok_; }

 private:
  const DriverApi& api_;
  CUstream stream_ = nullptr;
  bool ok_ = false;
};

#define NZ_BENCH_CHECK(call)                                                          \
  do {                                                                                \
    CUresult nz_r = (call);                                                           \
    if (nz_r != CUDA_SUCCESS) {                                                       \
      error = fmt::format("{} failed: {}", #call, describe(api, nz_r));               \
      return false;                                                                   \
    }                                                                                 \
  } while (0)

}  // namespace

bool run_gpu_benchmark(const DriverApi& api, DeviceCodec& codec, const void* host_bytes, size_t host_len,
                       const GpuBenchConfig& config, GpuBenchResult& result, std::string& error) {
  result = GpuBenchResult{};
  result.backend = codec.backend();
  const size_t elem = nz_dtype_size(config.opts.dtype);
  if (elem == 0 || host_len < elem) {
    error = "no input elements (or unknown dtype)";
    return false;
  }
  const uint64_t count = std::max<uint64_t>(1, (uint64_t{config.target_mib} << 20) / elem);
  const uint64_t bytes = count * elem;
  const size_t tile = host_len / elem * elem;
  Stream stream(api);
  Event start(api), stop(api);
  if (!stream.ok() || !start.ok() || !stop.ok()) {
    error = "cannot create a stream or events";
    return false;
  }
  DeviceBuffer input, compressed, output, workspace, scalars;
  const size_t bound = nz_compress_bound(count, &config.opts);
  const size_t ws_bytes = codec.encode_workspace_bytes(count, config.opts);
  NZ_BENCH_CHECK(input.allocate(api, bytes));
  NZ_BENCH_CHECK(compressed.allocate(api, bound));
  NZ_BENCH_CHECK(output.allocate(api, bytes));
  NZ_BENCH_CHECK(workspace.allocate(api, ws_bytes));
  NZ_BENCH_CHECK(scalars.allocate(api, 64));  // out_len, status, two hashes
  const CUdeviceptr out_len = scalars.get(), status = scalars.get() + 8, hash_in = scalars.get() + 16,
                    hash_out = scalars.get() + 24;
  // Tile: one host copy, then doubling device-to-device copies.
  NZ_BENCH_CHECK(api.cuMemcpyHtoD(input.get(), host_bytes, std::min<uint64_t>(tile, bytes)));
  for (uint64_t have = std::min<uint64_t>(tile, bytes); have < bytes;) {
    uint64_t n = std::min(have, bytes - have);
    NZ_BENCH_CHECK(api.cuMemcpyDtoD(input.get() + have, input.get(), n));
    have += n;
  }
  NZ_BENCH_CHECK(api.cuMemsetD8Async(status, 0, 4, stream.get()));

  auto best_of = [&](const std::function<CUresult()>& work, double& best_ms) -> bool {
    best_ms = 1e30;
    for (unsigned i = 0; i < std::max(1u, config.repeats); ++i) {
      NZ_BENCH_CHECK(api.cuEventRecord(start.get(), stream.get()));
      NZ_BENCH_CHECK(work());
      NZ_BENCH_CHECK(api.cuEventRecord(stop.get(), stream.get()));
      NZ_BENCH_CHECK(api.cuEventSynchronize(stop.get()));
      float ms = 0;
      NZ_BENCH_CHECK(api.cuEventElapsedTime(&ms, start.get(), stop.get()));
      best_ms = std::min(best_ms, static_cast<double>(ms));
    }
    return true;
  };

  double encode_ms = 0, decode_ms = 0, copy_ms = 0;
  if (!best_of([&] {
        return codec.encode(stream.get(), input.get(), count, config.opts, compressed.get(), bound, out_len,
                            workspace.get(), ws_bytes);
      }, encode_ms)) {
    return false;
  }
  uint64_t compressed_len = 0;
  NZ_BENCH_CHECK(api.cuMemcpyDtoH(&compressed_len, out_len, sizeof(compressed_len)));
  if (compressed_len == 0) {
    error = "the device encoder refused the input (out_len = 0)";
    return false;
  }
  if (!best_of([&] { return codec.decode(stream.get(), compressed.get(), compressed_len, output.get(), bytes, status); },
               decode_ms)) {
    return false;
  }
  if (!best_of([&] { return api.cuMemcpyDtoDAsync(output.get(), input.get(), bytes, stream.get()); }, copy_ms)) {
    return false;
  }
  // The copy overwrote the output: decode once more for the round-trip check.
  NZ_BENCH_CHECK(codec.decode(stream.get(), compressed.get(), compressed_len, output.get(), bytes, status));
  NZ_BENCH_CHECK(codec.hash(stream.get(), input.get(), bytes, hash_in));
  NZ_BENCH_CHECK(codec.hash(stream.get(), output.get(), bytes, hash_out));
  NZ_BENCH_CHECK(api.cuStreamSynchronize(stream.get()));
  uint64_t hashes[2] = {};
  NZ_BENCH_CHECK(api.cuMemcpyDtoH(hashes, hash_in, sizeof(hashes)));

  auto gbps = [](uint64_t b, double ms) { return ms > 0 ? static_cast<double>(b) / (ms * 1e6) : 0.0; };
  result.original_bytes = bytes;
  result.compressed_bytes = compressed_len;
  result.ratio = static_cast<double>(compressed_len) / static_cast<double>(bytes);
  result.encode_gbps = gbps(bytes, encode_ms);
  result.decode_gbps = gbps(bytes, decode_ms);
  result.copy_gbps = gbps(bytes, copy_ms);
  result.decode_vs_copy = result.copy_gbps > 0 ? result.decode_gbps / result.copy_gbps : 0;
  result.round_trip_ok = hashes[0] == hashes[1];
  return true;
}

}  // namespace nz::gpu
