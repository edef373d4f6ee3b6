// nzbench: compression ratio and CPU throughput of neuzip on real weights,
// next to the entropy bound of the split and zstd -3 / -19 on the same bytes.
// Usage and output schema: docs/NZBENCH.md.
//
// Exit codes: 0 success; 1 a codec failed or a decode did not verify;
// 2 bad usage or an unreadable/malformed input file (or --gpu without GPU support).
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <neuzip/neuzip.h>

#include "bench_input.h"
#include "codec_bench.h"
#include "gpu_bench.h"
#include "report.h"

namespace {

using namespace nzbench;

constexpr const char* kUsage =
    "usage: nzbench [options] FILE.safetensors...\n"
    "       nzbench [options] --synthetic N\n"
    "  --dtype bf16|fp16|fp32|keep  cast F32 tensors (round to nearest even); default keep\n"
    "  --mode lossless|lossy        default lossless\n"
    "  --bits K --block B           lossy: mantissa bits kept (default 3), block size (default 512, 0 = none)\n"
    "  --min-bytes N                skip tensors smaller than N bytes (default 65536)\n"
    "  --tile-mb M                  repeat each smaller tensor to M MiB for the timings\n"
    "  --threads T                  threads for the _mt figures (default: all cores)\n"
    "  --repeat R                   best of R runs (default 3)\n"
    "  --no-peers                   skip zstd\n"
    "  --seed S                     seed for --synthetic (default 1)\n"
    "  --cpu scalar|avx2|avx512     CPU codec path (as NEUZIP_CPU; default: the best this CPU has)\n"
    "  --json                       one JSON object on stdout\n"
    "  --gpu                        also benchmark the device codec per tensor set (needs a GPU build)\n"
    "  --gpu-mb M[,M...]            device buffer sizes for --gpu, MiB (default 4,64,256)\n";

bool parse_u64(std::string_view s, uint64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

// Returns 0 to go on, otherwise the exit code.
int parse_args(int argc, char** argv, Options& opts) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      value = arg.substr(arg.find('=') + 1);
      arg = arg.substr(0, arg.find('='));
      has_inline = true;
    }
    auto need = [&](std::string& out) {
      if (has_inline) { out = value; return true; }
      if (i + 1 >= argc) { fmt::print(stderr, "nzbench: {} needs a value\n", arg); return false; }
      out = argv[++i];
      return true;
    };
    auto need_u64 = [&](uint64_t& out) {
      std::string v;
      if (!need(v)) return false;
      if (!parse_u64(v, out)) { fmt::print(stderr, "nzbench: {} wants a non-negative integer, got '{}'\n", arg, v); return false; }
      return true;
    };
    uint64_t u = 0;
    std::string v;
    if (arg == "--help" || arg == "-h") { fmt::print("{}", kUsage); return -1; }
    else if (arg == "--json") opts.json = true;
    else if (arg == "--no-peers") opts.peers = false;
    else if (arg == "--gpu") opts.gpu = true;
    else if (arg == "--gpu-mb") {
      if (!need(v)) return 2;
      opts.gpu_mb.clear();
      size_t start = 0;
      while (start <= v.size()) {
        const size_t comma = std::min(v.find(',', start), v.size());
        if (!parse_u64(std::string_view(v).substr(start, comma - start), u) || u == 0 || u > 65536) {
          fmt::print(stderr, "nzbench: --gpu-mb wants sizes in MiB (1..65536) separated by commas, got '{}'\n", v);
          return 2;
        }
        opts.gpu_mb.push_back(u);
        start = comma + 1;
      }
    }
    else if (arg == "--cpu") {
      if (!need(v)) return 2;
      if (v != "scalar" && v != "avx2" && v != "avx512") {
        fmt::print(stderr, "nzbench: --cpu is scalar, avx2 or avx512, got '{}'\n", v);
        return 2;
      }
      opts.cpu = v;
    }
    else if (arg == "--synthetic") { if (!need_u64(opts.synthetic_elements)) return 2; }
    else if (arg == "--seed") { if (!need_u64(opts.seed)) return 2; }
    else if (arg == "--min-bytes") { if (!need_u64(opts.min_bytes)) return 2; }
    else if (arg == "--tile-mb") { if (!need_u64(opts.tile_mb) || opts.tile_mb > 65536) return 2; }
    else if (arg == "--threads") { if (!need_u64(u) || u == 0 || u > 4096) return 2; opts.threads = static_cast<uint32_t>(u); }
    else if (arg == "--repeat") { if (!need_u64(u) || u == 0 || u > 1000) return 2; opts.repeat = static_cast<uint32_t>(u); }
    else if (arg == "--bits") { if (!need_u64(u) || u > 22) return 2; opts.kept_bits = static_cast<uint32_t>(u); }
    else if (arg == "--block") { if (!need_u64(u) || u > (1u << 22)) return 2; opts.block = static_cast<uint32_t>(u); }
    else if (arg == "--mode") {
      if (!need(v)) return 2;
      if (v == "lossless") opts.mode = Mode::Lossless;
      else if (v == "lossy") opts.mode = Mode::Lossy;
      else { fmt::print(stderr, "nzbench: --mode is lossless or lossy, got '{}'\n", v); return 2; }
    } else if (arg == "--dtype") {
      if (!need(v)) return 2;
      if (v == "bf16") opts.cast_to = nztools::FloatType::BF16;
      else if (v == "fp16") opts.cast_to = nztools::FloatType::FP16;
      else if (v == "fp32") opts.cast_to = nztools::FloatType::FP32;
      else if (v == "keep") opts.cast_to.reset();
      else { fmt::print(stderr, "nzbench: --dtype is bf16, fp16, fp32 or keep, got '{}'\n", v); return 2; }
    } else if (arg.rfind("--", 0) == 0) {
      fmt::print(stderr, "nzbench: unknown option {}\n{}", arg, kUsage);
      return 2;
    } else {
      opts.files.push_back(arg);
    }
  }
  if (opts.files.empty() && opts.synthetic_elements == 0) {
    fmt::print(stderr, "nzbench: no input (give FILE.safetensors or --synthetic N)\n{}", kUsage);
    return 2;
  }
  if (opts.threads == 0) opts.threads = std::max(1u, std::thread::hardware_concurrency());
  return 0;
}

// Entropy bound of the split for a histogram: H(exponent) + R raw bits, over the dtype's bits.
double bound_ratio(const nztools::ExponentHistogram& h, nztools::FloatType t, const Options& opts) {
  const auto l = nztools::layout_of(t);
  const double raw_bits = 1.0 + (opts.mode == Mode::Lossy ? opts.kept_bits : static_cast<uint32_t>(l.mantissa_bits));
  return (nztools::entropy_bits(h) + raw_bits) / (8.0 * l.bytes);
}

void add_into(Figures& sum, const Figures& f) {
  auto add = [](double& a, double b) { a = std::isnan(a) ? b : a + b; };
  sum.bytes += f.bytes;
  sum.compressed_bytes += f.compressed_bytes;
  add(sum.encode_s_1t, f.encode_s_1t);
  add(sum.decode_s_1t, f.decode_s_1t);
  add(sum.decode_s_mt, f.decode_s_mt);
  if (f.max_rel_error) {
    sum.max_rel_error = std::max(sum.max_rel_error.value_or(0.0), *f.max_rel_error);
    // weighted by bytes; `mean_rel_error` holds the running weighted sum until finish
    sum.mean_rel_error = sum.mean_rel_error.value_or(0.0) + *f.mean_rel_error * static_cast<double>(f.bytes);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  if (int rc = parse_args(argc, argv, opts); rc != 0) return rc < 0 ? 0 : rc;
  // The codec reads NEUZIP_CPU once, at its first call: this is before it.
  // A level this CPU lacks makes the codec say so and use the best one;
  // the report names the path that ran.
  if (!opts.cpu.empty()) setenv("NEUZIP_CPU", opts.cpu.c_str(), 1);
  opts.cpu_path = nz_cpu_level();
  if (opts.gpu) {
    if (std::string why = gpu_bench_unavailable_reason(); !why.empty()) {
      fmt::print(stderr, "nzbench: --gpu: {}\n", why);
      return 2;
    }
  }
  std::vector<BenchTensor> tensors;
  std::vector<Skipped> skipped;
  std::string error;
  if (!load_inputs(opts, tensors, skipped, error)) {
    fmt::print(stderr, "nzbench: {}\n", error);
    return 2;
  }
  if (tensors.empty()) {
    fmt::print(stderr, "nzbench: no tensor to benchmark (all skipped; see --min-bytes)\n");
    return 2;
  }
  const bool with_zstd = opts.peers && zstd_available();
  if (opts.peers && !with_zstd) fmt::print(stderr, "nzbench: built without zstd: no peers\n");

  std::vector<TensorResult> results;
  std::map<nztools::FloatType, nztools::ExponentHistogram> set_histograms;
  std::map<nztools::FloatType, uint64_t> set_bytes;
  TotalResult total;
  double tensor_bound_bits = 0;
  for (auto& t : tensors) {
    TensorResult r;
    r.tensor = &t;
    const auto hist = nztools::exponent_histogram(t.data.data(), t.elements(), t.type);
    nztools::add_histogram(set_histograms[t.type], hist);
    set_bytes[t.type] += t.data.size();
    r.exponent_entropy_bits = nztools::entropy_bits(hist);
    const double bound = bound_ratio(hist, t.type, opts);
    if (!bench_neuzip(opts, t, r.neuzip, error)) {
      fmt::print(stderr, "nzbench: {} / {}: {}\n", t.file, t.name, error);
      return 1;
    }
    r.neuzip.bound_ratio = bound;
    finish_figures(r.neuzip);
    add_into(total.neuzip, r.neuzip);
    tensor_bound_bits += bound * 8.0 * static_cast<double>(t.data.size());
    if (with_zstd) {
      BenchTensor untiled;
      if (t.tiled) {
        untiled.type = t.type;
        untiled.data = t.untiled;
      }
      const BenchTensor& peer_input = t.tiled ? untiled : t;
      const double peer_bound = t.tiled ? bound_ratio(nztools::exponent_histogram(untiled.data.data(), untiled.elements(), t.type), t.type, opts) : bound;
      for (int level : {3, 19}) {
        Figures f;
        if (!bench_zstd(opts, level, peer_input, f, error)) {
          fmt::print(stderr, "nzbench: {} / {}: {}\n", t.file, t.name, error);
          return 1;
        }
        f.bound_ratio = peer_bound;
        finish_figures(f);
        const std::string name = fmt::format("zstd-{}", level);
        add_into(total.peers[name], f);
        r.peers[name] = f;
      }
    }
    if (!opts.json) fmt::print(stderr, "  done {} ({:.4f})\n", t.name, r.neuzip.ratio);
    results.push_back(std::move(r));
  }
  // Bound of the whole set: one histogram per dtype, weighted by the bits of each dtype.
  double bound_bits = 0, all_bits = 0;
  for (const auto& [type, hist] : set_histograms) {
    const double bits = 8.0 * static_cast<double>(set_bytes[type]);
    bound_bits += bound_ratio(hist, type, opts) * bits;
    all_bits += bits;
  }
  const double total_bound = all_bits > 0 ? bound_bits / all_bits : NAN;
  auto finish_total = [&](Figures& f) {
    f.bound_ratio = total_bound;
    if (f.mean_rel_error && f.bytes) f.mean_rel_error = *f.mean_rel_error / static_cast<double>(f.bytes);
    finish_figures(f);
  };
  finish_total(total.neuzip);
  total.tensor_bounds_ratio = tensor_bound_bits / (8.0 * static_cast<double>(total.neuzip.bytes));
  for (auto& [name, f] : total.peers) finish_total(f);

  GpuReport gpu;
  bool gpu_verified = true;
  if (opts.gpu) {
    const GpuBenchStatus st = bench_gpu_sets(opts, tensors, gpu, error);
    if (st != GpuBenchStatus::kOk) {
      fmt::print(stderr, "nzbench: --gpu: {}\n", error);
      return st == GpuBenchStatus::kUnavailable ? 2 : 1;
    }
    if (gpu.backend == "simulator")
      fmt::print(stderr, "nzbench: WARNING: --gpu ran on the simulated driver ({}): simulator timings are not GPU "
                 "timings\n", gpu.device);
    for (const auto& g : gpu.results) {
      // A lossy round trip is not the input, so only the CPU comparison counts there.
      const bool ok = g.cpu_bit_exact && (opts.mode == Mode::Lossy || g.round_trip_ok);
      if (!ok) fmt::print(stderr, "nzbench: --gpu: {} ({}) at {} MiB did not verify (round trip {}, CPU bit-exact {})\n",
                          g.set, g.dtype, g.buffer_mb, g.round_trip_ok, g.cpu_bit_exact);
      gpu_verified = gpu_verified && ok;
    }
  }

  const GpuReport* gpu_report = opts.gpu ? &gpu : nullptr;
  const std::string out = opts.json ? render_json(opts, results, total, skipped, gpu_report)
                                    : render_text(opts, results, total, skipped, gpu_report);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return gpu_verified ? 0 : 1;
}
