// codec_bench: a quick timing harness for the codec on real weights (not a
// test; the project benchmark is tools/nzbench). Prints ratio, entropy bound
// and single-thread encode/decode throughput for each rANS implementation.
//   codec_bench [file.safetensors] [dtype: bf16|fp16|fp32] [repeats] [K block] [only]
// K < M selects lossy mode with that many kept bits and block size `block`
// (0 = none). `only` = encode|decode restricts the timed part (for callgrind:
// one repeat of one phase, plus the single untimed encode decode needs).
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "codec/decoder.h"
#include "codec/dtype.h"
#include "neuzip/neuzip.h"
#include "weights_file.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU time of this thread: on a loaded machine it leaves out the time spent
// waiting for a core, so single-thread figures stay comparable.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = argc > 1 ? argv[1] : nz::test::weights_dir() + "/gpt-neo-125m-attn-bf16.safetensors";
  std::string dtype_name = argc > 2 ? argv[2] : "bf16";
  int repeats = argc > 3 ? std::atoi(argv[3]) : 5;
  nz_dtype dtype = dtype_name == "fp16" ? NZ_FP16 : dtype_name == "fp32" ? NZ_FP32 : NZ_BF16;
  const auto layout = nz::codec::dtype_layout(dtype);
  const int kept = argc > 4 ? std::atoi(argv[4]) : static_cast<int>(layout.mantissa_bits);
  const int block = argc > 5 ? std::atoi(argv[5]) : 0;
  const std::string only = argc > 6 ? argv[6] : "";
  const bool lossy = kept < static_cast<int>(layout.mantissa_bits);
  auto data = nz::test::safetensors_payload(path);
  if (data.empty()) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  const uint64_t n = data.size() / layout.bytes;
  const uint64_t bytes = n * layout.bytes;

  // Entropy bound of the split.
  std::vector<uint64_t> counts(256, 0);
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t v = 0;
    std::memcpy(&v, data.data() + i * layout.bytes, layout.bytes);
    ++counts[(v >> layout.mantissa_bits) & ((1u << layout.exponent_bits) - 1)];
  }
  double bits = 0;
  for (auto c : counts) {
    if (c) bits -= static_cast<double>(c) * std::log2(static_cast<double>(c) / static_cast<double>(n));
  }
  bits += static_cast<double>(n) * (1 + (lossy ? kept : layout.mantissa_bits));
  const double bound = bits / 8 / static_cast<double>(bytes);

  nz_options opts;
  nz_options_default(&opts, dtype);
  opts.threads = 1;
  if (lossy) {
    opts.mode = NZ_LOSSY;
    opts.kept_bits = static_cast<uint32_t>(kept);
    opts.block_size = static_cast<uint32_t>(block);
  }
  std::vector<uint8_t> comp(nz_compress_bound(n, &opts));
  size_t comp_len = 0;
  double best_enc = 1e9, best_enc_cpu = 1e9;
  const int enc_repeats = only == "decode" ? 1 : repeats;
  for (int r = 0; r < enc_repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    nz_status st = nz_compress(data.data(), n, &opts, comp.data(), comp.size(), &comp_len);
    best_enc_cpu = std::min(best_enc_cpu, thread_cpu_seconds() - c0);
    best_enc = std::min(best_enc, seconds_since(t0));
    if (st != NZ_OK) {
      std::fprintf(stderr, "compress: %s\n", nz_error_string(st));
      return 1;
    }
  }
  const double ratio = static_cast<double>(comp_len) / static_cast<double>(bytes);
  std::printf("%s: %llu elements, %s, ratio %.5f, entropy bound %.5f, excess %.3f%%\n", path.c_str(),
              static_cast<unsigned long long>(n), lossy ? "lossy" : "lossless", ratio, bound,
              100.0 * (ratio / bound - 1));
  std::printf("encode 1 thread: %.3f GB/s (cpu time: %.3f GB/s)\n", static_cast<double>(bytes) / best_enc / 1e9,
              static_cast<double>(bytes) / best_enc_cpu / 1e9);
  if (only == "encode") return 0;

  std::vector<uint8_t> out(bytes);
  std::vector<uint8_t> reference;
  const char* names[] = {"scalar", "avx2", "avx512"};
  for (int impl = only == "decode" ? 2 : 0; impl < 3; ++impl) {
    auto which = static_cast<nz::codec::CpuLevel>(impl);
    if (!nz::codec::cpu_level_supported(which)) continue;
    double best = 1e9, best_cpu = 1e9;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      const double c0 = thread_cpu_seconds();
      nz_status st = nz::codec::decompress(comp.data(), comp_len, out.data(), out.size(), 1, which);
      best_cpu = std::min(best_cpu, thread_cpu_seconds() - c0);
      best = std::min(best, seconds_since(t0));
      // Lossless must give the input back; lossy must agree across implementations.
      if (!lossy) {
        if (st == NZ_OK && std::memcmp(out.data(), data.data(), bytes) != 0) st = NZ_ERR_CORRUPT_CHUNK;
      } else if (reference.empty()) {
        reference = out;
      } else if (st == NZ_OK && out != reference) {
        st = NZ_ERR_CORRUPT_CHUNK;
      }
      if (st != NZ_OK) {
        std::fprintf(stderr, "decode %s failed: %s\n", names[impl], nz_error_string(st));
        return 1;
      }
    }
    std::printf("decode 1 thread %-6s: %.3f GB/s (cpu time: %.3f GB/s)\n", names[impl],
                static_cast<double>(bytes) / best / 1e9, static_cast<double>(bytes) / best_cpu / 1e9);
  }
  if (only == "decode") return 0;
  auto t0 = std::chrono::steady_clock::now();
  nz_status st = nz_decompress(comp.data(), comp_len, out.data(), out.size(), 0);
  std::printf("decode all threads: %.3f GB/s (%s)\n", static_cast<double>(bytes) / seconds_since(t0) / 1e9,
              nz_error_string(st));
  return 0;
}
