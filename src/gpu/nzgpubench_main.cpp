// nzgpubench: GPU codec throughput on real weights (see gpu_bench.h).
//
//   [NZ_WEIGHTS_DIR=dir] nzgpubench [--mib N] [--repeats R] [--lossy K] [--block B] [--chunk C] [file.safetensors]
//
// Reads the BF16 tensors of the file (default: the GPT-Neo attention weights
// in ../shared/weights), tiles them to N MiB on device 0 and prints one line
// per figure. Exit status 0 only when the round trip verified (lossless; lossy
// output is checked against the CPU codec by gpu_codec_test instead).
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gpu/device_codec.h"
#include "gpu/device_session.h"
#include "gpu/gpu_bench.h"
#include "util/safetensors.h"

#ifndef NZ_WEIGHTS_DIR
#define NZ_WEIGHTS_DIR "../shared/weights"
#endif

int main(int argc, char** argv) {
  nz::gpu::GpuBenchConfig config;
  nz_options_default(&config.opts, NZ_BF16);
  const char* weights_env = std::getenv("NZ_WEIGHTS_DIR");
  std::string file = std::string(weights_env && *weights_env ? weights_env : NZ_WEIGHTS_DIR) +
                     "/gpt-neo-125m-attn-bf16.safetensors";
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* flag) -> long {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{} needs a value\n", flag);
        std::exit(2);
      }
      return std::strtol(argv[++i], nullptr, 10);
    };
    if (!std::strcmp(argv[i], "--mib")) config.target_mib = static_cast<size_t>(next("--mib"));
    else if (!std::strcmp(argv[i], "--repeats")) config.repeats = static_cast<unsigned>(next("--repeats"));
    else if (!std::strcmp(argv[i], "--lossy")) { config.opts.mode = NZ_LOSSY; config.opts.kept_bits = static_cast<uint32_t>(next("--lossy")); }
    else if (!std::strcmp(argv[i], "--block")) config.opts.block_size = static_cast<uint32_t>(next("--block"));
    else if (!std::strcmp(argv[i], "--chunk")) config.opts.chunk_elems = static_cast<uint32_t>(next("--chunk"));
    else if (argv[i][0] == '-') { fmt::print(stderr, "unknown option {}\n", argv[i]); return 2; }
    else file = argv[i];
  }
  nz::util::SafetensorsFile weights;
  std::string error;
  if (!nz::util::load_safetensors(file, weights, error)) {
    fmt::print(stderr, "nzgpubench: {}\n", error);
    return 1;
  }
  const auto bf16_tensors = std::count_if(weights.tensors().begin(), weights.tensors().end(),
                                          [](const auto& t) { return t.dtype == "BF16"; });
  const std::vector<uint8_t> bytes = nz::util::concat_tensor_bytes(weights, "BF16");
  if (bytes.empty()) {
    fmt::print(stderr, "nzgpubench: no BF16 tensors in {}\n", file);
    return 1;
  }

  nz::gpu::DeviceSession session;
  if (!session.open(error)) {
    fmt::print(stderr, "nzgpubench: {}\n", error);
    return 1;
  }
  auto codec = nz::gpu::DeviceCodec::create(session.api(), error);
  if (!codec) {
    fmt::print(stderr, "nzgpubench: {}\n", error);
    return 1;
  }
  nz::gpu::GpuBenchResult r;
  if (!nz::gpu::run_gpu_benchmark(session.api(), *codec, bytes.data(), bytes.size(), config, r, error)) {
    fmt::print(stderr, "nzgpubench: {}\n", error);
    return 1;
  }
  const bool sim = r.backend == nz::gpu::Backend::kSimulator;
  fmt::print("device          {}{}\n", session.device_name(), sim ? " (simulator: timings are meaningless)" : "");
  fmt::print("input           {} ({} BF16 tensors, {} bytes) tiled to {} bytes\n", file, bf16_tensors, bytes.size(),
             r.original_bytes);
  fmt::print("mode            {}\n", config.opts.mode == NZ_LOSSY ? fmt::format("lossy K={}", config.opts.kept_bits) : "lossless");
  fmt::print("ratio           {:.4f}\n", r.ratio);
  fmt::print("decode          {:.1f} GB/s (decompressed bytes)\n", r.decode_gbps);
  fmt::print("encode          {:.1f} GB/s (original bytes)\n", r.encode_gbps);
  fmt::print("d2d copy        {:.1f} GB/s\n", r.copy_gbps);
  fmt::print("decode / copy   {:.3f}\n", r.decode_vs_copy);
  // Lossy output differs from the input by design: its bits are checked
  // against the CPU codec by gpu_codec_test, not here.
  const bool lossy = config.opts.mode == NZ_LOSSY;
  fmt::print("round trip      {}\n", lossy ? "not checked (lossy)" : r.round_trip_ok ? "ok" : "MISMATCH");
  return lossy || r.round_trip_ok ? 0 : 1;
}
