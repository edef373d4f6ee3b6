// report.cpp: text and JSON rendering of nzbench results.
#include "report.h"

#include <cmath>

#include <fmt/format.h>

#include "util/json_value.h"

namespace nzbench {

namespace {

using nz::util::json::quote;

std::string num(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

std::string figures_json(const Figures& f) {
  std::string s = fmt::format(
      "\"bytes\": {}, \"compressed_bytes\": {}, \"ratio\": {}, \"bound_ratio\": {}, \"overhead_pct\": {}, "
      "\"encode_gbps_1t\": {}, \"decode_gbps_1t\": {}, \"decode_gbps_mt\": {}",
      f.bytes, f.compressed_bytes, num(f.ratio), num(f.bound_ratio), num(f.overhead_pct), num(f.encode_gbps_1t),
      num(f.decode_gbps_1t), num(f.decode_gbps_mt));
  if (f.max_rel_error) s += fmt::format(", \"max_rel_error\": {}", num(*f.max_rel_error));
  if (f.mean_rel_error) s += fmt::format(", \"mean_rel_error\": {}", num(*f.mean_rel_error));
  return s;
}

std::string peers_json(const std::map<std::string, Figures>& peers) {
  std::string s = "\"peers\": {";
  bool first = true;
  for (const auto& [name, f] : peers) {
    s += fmt::format("{}{}: {{{}}}", first ? "" : ", ", quote(name), figures_json(f));
    first = false;
  }
  return s + "}";
}

std::string gbps(double v) { return std::isfinite(v) ? fmt::format("{:6.2f}", v) : "     -"; }
std::string ratio(double v) { return std::isfinite(v) ? fmt::format("{:.4f}", v) : "     -"; }

}  // namespace

static std::string gpu_json(const GpuReport& g) {
  std::string s = fmt::format("{{\"backend\": {}, \"device\": {}, \"simulator\": {}, \"cpu_check\": {}, \"sets\": [",
                              quote(g.backend), quote(g.device), g.backend == "simulator" ? "true" : "false",
                              quote(g.cpu_check));
  for (size_t i = 0; i < g.results.size(); ++i) {
    const auto& r = g.results[i];
    s += fmt::format(
        "{}\n    {{\"set\": {}, \"dtype\": {}, \"tensors\": {}, \"set_bytes\": {}, \"buffer_mb\": {}, "
        "\"buffer_bytes\": {}, \"compressed_bytes\": {}, \"ratio\": {}, \"decode_gbps\": {}, \"encode_gbps\": {}, "
        "\"d2d_copy_gbps\": {}, \"decode_vs_copy\": {}, \"encode_vs_copy\": {}, \"round_trip_ok\": {}, "
        "\"verified_bit_exact_vs_cpu\": {}}}",
        i ? "," : "", quote(r.set), quote(r.dtype), r.tensors, r.set_bytes, r.buffer_mb, r.buffer_bytes,
        r.compressed_bytes, num(r.ratio), num(r.decode_gbps), num(r.encode_gbps), num(r.d2d_copy_gbps),
        num(r.decode_vs_copy), num(r.encode_vs_copy), r.round_trip_ok ? "true" : "false",
        r.cpu_bit_exact ? "true" : "false");
  }
  return s + "\n  ]}";
}

static std::string gpu_text(const GpuReport& g) {
  std::string s = fmt::format("\nGPU ({} backend, {}){}; GB/s = 1e9 uncompressed bytes/s, best of the repeats\n",
                              g.backend, g.device,
                              g.backend == "simulator" ? " -- WARNING: simulator timings are not GPU timings" : "");
  s += fmt::format("{:<32} {:>5} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>9}\n", "set", "dtype", "MiB",
                   "ratio", "decode", "encode", "d2d", "dec/cp", "enc/cp", "rt", "cpu-exact");
  for (const auto& r : g.results) {
    std::string name = r.set;
    if (name.size() > 32) name = "..." + name.substr(name.size() - 29);
    s += fmt::format("{:<32} {:>5} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>9}\n", name, r.dtype,
                     r.buffer_mb, ratio(r.ratio), gbps(r.decode_gbps), gbps(r.encode_gbps), gbps(r.d2d_copy_gbps),
                     ratio(r.decode_vs_copy), ratio(r.encode_vs_copy), r.round_trip_ok ? "ok" : "BAD",
                     r.cpu_bit_exact ? "yes" : "NO");
  }
  return s;
}

std::string render_json(const Options& opts, const std::vector<TensorResult>& results, const TotalResult& total,
                        const std::vector<Skipped>& skipped, const GpuReport* gpu) {
  std::string s = "{\n";
  s += fmt::format(
      "  \"tool\": \"nzbench\", \"schema_version\": 1,\n"
      "  \"config\": {{\"mode\": {}, \"kept_bits\": {}, \"block\": {}, \"dtype\": {}, \"min_bytes\": {}, "
      "\"tile_mb\": {}, \"threads\": {}, \"repeat\": {}, \"cpu_path\": {}, \"gbps_unit\": \"1e9 uncompressed bytes/s\"}},\n",
      quote(opts.mode == Mode::Lossy ? "lossy" : "lossless"),
      opts.mode == Mode::Lossy ? fmt::format("{}", opts.kept_bits) : "null",
      opts.mode == Mode::Lossy ? fmt::format("{}", opts.block) : "null",
      quote(opts.cast_to ? nztools::name_of(*opts.cast_to) : "keep"), opts.min_bytes, opts.tile_mb, opts.threads,
      opts.repeat, quote(opts.cpu_path));
  s += "  \"tensors\": [";
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    const auto& t = *r.tensor;
    std::string shape;
    for (size_t k = 0; k < t.shape.size(); ++k) shape += fmt::format("{}{}", k ? ", " : "", t.shape[k]);
    s += fmt::format(
        "{}\n    {{\"file\": {}, \"name\": {}, \"source_dtype\": {}, \"dtype\": {}, \"shape\": [{}], "
        "\"original_bytes\": {}, \"tiled\": {}, \"exponent_entropy_bits\": {}, {}, {}}}",
        i ? "," : "", quote(t.file), quote(t.name), quote(t.source_dtype), quote(nztools::name_of(t.type)), shape,
        t.original_bytes, t.tiled ? "true" : "false", num(r.exponent_entropy_bits), figures_json(r.neuzip),
        peers_json(r.peers));
  }
  s += "\n  ],\n  \"skipped\": [";
  for (size_t i = 0; i < skipped.size(); ++i)
    s += fmt::format("{}\n    {{\"file\": {}, \"name\": {}, \"reason\": {}}}", i ? "," : "", quote(skipped[i].file),
                     quote(skipped[i].name), quote(skipped[i].reason));
  s += fmt::format("\n  ],\n  \"total\": {{{}, \"tensor_bounds_ratio\": {}, {}}}", figures_json(total.neuzip),
                   num(total.tensor_bounds_ratio), peers_json(total.peers));
  if (gpu) s += ",\n  \"gpu\": " + gpu_json(*gpu);
  return s + "\n}\n";
}

std::string render_text(const Options& opts, const std::vector<TensorResult>& results, const TotalResult& total,
                        const std::vector<Skipped>& skipped, const GpuReport* gpu) {
  std::string s;
  s += fmt::format("nzbench: {}{}, {} threads for _mt, best of {}, CPU codec path {}; GB/s = 1e9 uncompressed bytes/s\n",
                   opts.mode == Mode::Lossy ? fmt::format("lossy K={} block={}", opts.kept_bits, opts.block)
                                            : "lossless",
                   opts.cast_to ? fmt::format(", cast to {}", nztools::name_of(*opts.cast_to)) : "", opts.threads,
                   opts.repeat, opts.cpu_path);
  if (opts.tile_mb > 0)
    s += fmt::format("note: tensors smaller than {} MiB are TILED (repeated) to {} MiB for neuzip; zstd runs on the\n"
                     "      untiled tensor (an LZ coder would exploit the repetition)\n",
                     opts.tile_mb, opts.tile_mb);
  s += fmt::format("{:<34} {:>5} {:>9} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} | {:>7} {:>6} {:>6} | {:>7} {:>6} {:>6}\n",
                   "tensor", "dtype", "KiB", "ratio", "bound", "ovh%", "enc1t", "dec1t", "decMT", "zstd-3",
                   "dec1t", "decMT", "zstd-19", "dec1t", "decMT");
  auto row = [&](const std::string& name, const std::string& dtype, const Figures& f,
                 const std::map<std::string, Figures>& peers) {
    s += fmt::format("{:<34} {:>5} {:>9.1f} {:>7} {:>7} {:>6.2f} {} {} {}", name.substr(0, 34), dtype,
                     static_cast<double>(f.bytes) / 1024.0, ratio(f.ratio), ratio(f.bound_ratio), f.overhead_pct,
                     gbps(f.encode_gbps_1t), gbps(f.decode_gbps_1t), gbps(f.decode_gbps_mt));
    for (const char* p : {"zstd-3", "zstd-19"}) {
      auto it = peers.find(p);
      if (it == peers.end()) s += " | " + std::string(7, ' ') + "      -      -";
      else s += fmt::format(" | {:>7} {} {}", ratio(it->second.ratio), gbps(it->second.decode_gbps_1t),
                            gbps(it->second.decode_gbps_mt));
    }
    if (f.max_rel_error) s += fmt::format("  max_rel {:.3g} mean_rel {:.3g}", *f.max_rel_error, *f.mean_rel_error);
    s += "\n";
  };
  for (const auto& r : results) row(r.tensor->name + (r.tensor->tiled ? "*" : ""), nztools::name_of(r.tensor->type), r.neuzip, r.peers);
  row("TOTAL", "", total.neuzip, total.peers);
  s += fmt::format("total bound_ratio uses one exponent histogram over the whole set; the sum of the tensors' own\n"
                   "bounds is {:.4f} (overhead vs that: {:.2f} %)\n",
                   total.tensor_bounds_ratio, (total.neuzip.ratio / total.tensor_bounds_ratio - 1.0) * 100.0);
  if (opts.tile_mb > 0) s += "(* = tiled)\n";
  for (const auto& k : skipped) s += fmt::format("skipped {}: {}\n", k.name, k.reason);
  if (gpu) s += gpu_text(*gpu);
  return s;
}

}  // namespace nzbench
