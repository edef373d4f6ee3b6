// gpu_bench_device.cpp: nzbench --gpu on the device codec of src/gpu.
//
// Sets: the tensors of one file with one dtype, concatenated before tiling
// (the tiling is run_gpu_benchmark's own, to each --gpu-mb size). On the
// simulated driver everything runs but the timings are the host's.
#include <fmt/format.h>
#include <neuzip/neuzip.h>

#include <map>
#include <utility>

#include "gpu/device_buffer.h"
#include "gpu/device_codec.h"
#include "gpu/device_session.h"
#include "gpu/gpu_bench.h"
#include "codec_options.h"
#include "gpu_bench.h"

namespace nzbench {

namespace {

struct TensorSet {
  std::string name;
  nztools::FloatType type = nztools::FloatType::BF16;
  uint64_t tensors = 0;
  std::vector<uint8_t> bytes;
};

std::vector<TensorSet> group_sets(const std::vector<BenchTensor>& tensors) {
  std::map<std::pair<std::string, int>, TensorSet> by_key;
  std::vector<std::pair<std::string, int>> order;
  for (const auto& t : tensors) {
    const std::string file = t.file.empty() ? "synthetic" : t.file;
    const auto key = std::make_pair(file, static_cast<int>(t.type));
    auto [it, fresh] = by_key.try_emplace(key);
    if (fresh) order.push_back(key);
    TensorSet& s = it->second;
    s.name = file;
    s.type = t.type;
    ++s.tensors;
    const auto& src = t.tiled ? t.untiled : t.data;  // the set is tiled by the benchmark itself
    s.bytes.insert(s.bytes.end(), src.begin(), src.end());
  }
  std::vector<TensorSet> out;
  for (const auto& k : order) out.push_back(std::move(by_key[k]));
  return out;
}

#define NZBENCH_GPU_CHECK(call)                                                         \
  do {                                                                                  \
    const CUresult nz_r = (call);                                                       \
    if (nz_r != CUDA_SUCCESS) {                                                         \
      error = fmt::format("{} failed: {}", #call, nz::gpu::describe(api, nz_r));        \
      return false;                                                                     \
    }                                                                                   \
  } while (0)

// The device codec against the CPU codec on `bytes`: identical encoded bytes,
// identical decoded bytes. `exact` false on a mismatch; false return on a failure.
bool check_against_cpu(const nz::gpu::DriverApi& api, nz::gpu::DeviceCodec& codec, const std::vector<uint8_t>& bytes,
                       const nz_options& o, bool& exact, std::string& error) {
  exact = false;
  const uint64_t count = bytes.size() / nz_dtype_size(o.dtype);
  const size_t len = count * nz_dtype_size(o.dtype);
  const size_t bound = nz_compress_bound(count, &o);
  std::vector<uint8_t> cpu_stream(bound), cpu_decoded(len);
  size_t cpu_len = 0;
  nz_status st = nz_compress(bytes.data(), count, &o, cpu_stream.data(), cpu_stream.size(), &cpu_len);
  if (st != NZ_OK) {
    error = fmt::format("CPU nz_compress failed: {}", nz_error_string(st));
    return false;
  }
  st = nz_decompress(cpu_stream.data(), cpu_len, cpu_decoded.data(), cpu_decoded.size(), 0);
  if (st != NZ_OK) {
    error = fmt::format("CPU nz_decompress failed: {}", nz_error_string(st));
    return false;
  }
  const size_t ws_bytes = codec.encode_workspace_bytes(count, o);
  nz::gpu::DeviceBuffer input, stream_buf, output, workspace, scalars;
  NZBENCH_GPU_CHECK(input.allocate(api, len));
  NZBENCH_GPU_CHECK(stream_buf.allocate(api, bound));
  NZBENCH_GPU_CHECK(output.allocate(api, len));
  NZBENCH_GPU_CHECK(workspace.allocate(api, ws_bytes));
  NZBENCH_GPU_CHECK(scalars.allocate(api, 16));  // out_len, status
  NZBENCH_GPU_CHECK(api.cuMemcpyHtoD(input.get(), bytes.data(), len));
  CUstream s = nullptr;  // the legacy stream: this check is not timed
  NZBENCH_GPU_CHECK(codec.encode(s, input.get(), count, o, stream_buf.get(), bound, scalars.get(), workspace.get(),
                                 ws_bytes));
  NZBENCH_GPU_CHECK(api.cuStreamSynchronize(s));
  uint64_t gpu_len = 0;
  NZBENCH_GPU_CHECK(api.cuMemcpyDtoH(&gpu_len, scalars.get(), sizeof gpu_len));
  std::vector<uint8_t> gpu_stream(gpu_len);
  if (gpu_len) NZBENCH_GPU_CHECK(api.cuMemcpyDtoH(gpu_stream.data(), stream_buf.get(), gpu_len));
  const bool encode_same = gpu_len == cpu_len && std::equal(gpu_stream.begin(), gpu_stream.end(), cpu_stream.begin());
  // Decode the CPU's stream on the device.
  NZBENCH_GPU_CHECK(api.cuMemcpyHtoD(stream_buf.get(), cpu_stream.data(), cpu_len));
  NZBENCH_GPU_CHECK(codec.decode(s, stream_buf.get(), cpu_len, output.get(), len, scalars.get() + 8));
  NZBENCH_GPU_CHECK(api.cuStreamSynchronize(s));
  std::vector<uint8_t> gpu_decoded(len);
  NZBENCH_GPU_CHECK(api.cuMemcpyDtoH(gpu_decoded.data(), output.get(), len));
  exact = encode_same && gpu_decoded == cpu_decoded;
  return true;
}

}  // namespace

std::string gpu_bench_unavailable_reason() { return {}; }

GpuBenchStatus bench_gpu_sets(const Options& opts, const std::vector<BenchTensor>& tensors, GpuReport& out,
                              std::string& error) {
  nz::gpu::DeviceSession session;
  if (!session.open(error)) return GpuBenchStatus::kUnavailable;
  const auto& api = session.api();
  auto codec = nz::gpu::DeviceCodec::create(api, error);
  if (!codec) return GpuBenchStatus::kUnavailable;
  out.backend = codec->backend() == nz::gpu::Backend::kSimulator ? "simulator" : "cuda";
  out.device = session.device_name();
  for (const TensorSet& set : group_sets(tensors)) {
    const nz_options o = codec_options(opts, set.type);
    bool exact = false;
    if (!check_against_cpu(api, *codec, set.bytes, o, exact, error)) {
      error = fmt::format("{} ({}): {}", set.name, nztools::name_of(set.type), error);
      return GpuBenchStatus::kFailed;
    }
    for (uint64_t mb : opts.gpu_mb) {
      nz::gpu::GpuBenchConfig config;
      config.opts = o;
      config.target_mib = mb;
      config.repeats = opts.repeat;
      nz::gpu::GpuBenchResult r;
      if (!nz::gpu::run_gpu_benchmark(api, *codec, set.bytes.data(), set.bytes.size(), config, r, error)) {
        error = fmt::format("{} ({}) at {} MiB: {}", set.name, nztools::name_of(set.type), mb, error);
        return GpuBenchStatus::kFailed;
      }
      GpuSetResult g;
      g.set = set.name;
      g.dtype = nztools::name_of(set.type);
      g.tensors = set.tensors;
      g.set_bytes = set.bytes.size();
      g.buffer_mb = mb;
      g.buffer_bytes = r.original_bytes;
      g.compressed_bytes = r.compressed_bytes;
      g.ratio = r.ratio;
      g.decode_gbps = r.decode_gbps;
      g.encode_gbps = r.encode_gbps;
      g.d2d_copy_gbps = r.copy_gbps;
      g.decode_vs_copy = r.copy_gbps > 0 ? r.decode_gbps / r.copy_gbps : NAN;
      g.encode_vs_copy = r.copy_gbps > 0 ? r.encode_gbps / r.copy_gbps : NAN;
      g.round_trip_ok = r.round_trip_ok;
      g.cpu_bit_exact = exact;
      out.results.push_back(g);
    }
  }
  return GpuBenchStatus::kOk;
}

}  // namespace nzbench
