// bench_types.h: what nzbench measures and on what.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/float_bits.h"

namespace nzbench {

enum class Mode { Lossless, Lossy };

struct Options {
  std::vector<std::string> files;
  uint64_t synthetic_elements = 0;  // > 0: benchmark one synthetic tensor instead of files
  uint64_t seed = 1;
  std::optional<nztools::FloatType> cast_to;  // --dtype; nullopt = keep each tensor's dtype
  Mode mode = Mode::Lossless;
  uint32_t kept_bits = 3;  // --bits (lossy)
  uint32_t block = 512;    // --block (lossy), 0 = none
  uint64_t min_bytes = 64 * 1024;
  uint64_t tile_mb = 0;  // 0 = no tiling
  uint32_t threads = 0;  // 0 = all cores (resolved in main)
  uint32_t repeat = 3;
  bool json = false;
  bool peers = true;  // zstd -3 / -19 in the same run
  bool gpu = false;
  std::vector<uint64_t> gpu_mb = {4, 64, 256};  // --gpu-mb: device buffer sizes, MiB
  std::string cpu;       // --cpu: the codec level asked for ("" = NEUZIP_CPU or the best)
  std::string cpu_path;  // the level the CPU codec ran at (nz_cpu_level)
};

// One tensor ready to benchmark: bytes in its benchmark dtype (already cast,
// already tiled).
struct BenchTensor {
  std::string file;
  std::string name;
  std::vector<uint64_t> shape;
  std::string source_dtype;  // as stored in the file ("F32", "BF16", "synthetic")
  nztools::FloatType type = nztools::FloatType::BF16;
  uint64_t original_bytes = 0;  // before tiling, in the benchmark dtype
  bool tiled = false;
  std::vector<uint8_t> data;
  // The bytes before tiling (only when tiled): the zstd peers run on these,
  // because an LZ coder would exploit the repetition and report a fake ratio.
  std::vector<uint8_t> untiled;
  uint64_t elements() const { return data.size() / static_cast<uint64_t>(nztools::layout_of(type).bytes); }
};

struct Skipped {
  std::string file, name, reason;
};

// One codec's figures on one tensor (or the total). GB/s counts 1e9 bytes of
// uncompressed data per second, best of the repeats. NaN = not measured (JSON null).
struct Figures {
  uint64_t bytes = 0;             // uncompressed bytes benchmarked
  uint64_t compressed_bytes = 0;  // sum of compressed sizes
  double ratio = NAN;             // compressed / original
  double bound_ratio = NAN;       // entropy bound of the split / original
  double overhead_pct = NAN;      // (ratio / bound_ratio - 1) * 100
  double encode_gbps_1t = NAN;
  double decode_gbps_1t = NAN;
  double decode_gbps_mt = NAN;
  // Seconds behind the GB/s figures, kept so the total can add them up.
  double encode_s_1t = NAN, decode_s_1t = NAN, decode_s_mt = NAN;
  // lossy only
  std::optional<double> max_rel_error, mean_rel_error;
};

struct TensorResult {
  BenchTensor* tensor = nullptr;
  double exponent_entropy_bits = 0;
  Figures neuzip;
  std::map<std::string, Figures> peers;  // "zstd-3", "zstd-19"
};

struct TotalResult {
  Figures neuzip;
  // Sum over tensors of each tensor's own bound (the codec has one table per
  // tensor, so this is what it can reach), over the total bytes.
  double tensor_bounds_ratio = NAN;
  std::map<std::string, Figures> peers;
};

// The GPU benchmark of one tensor set (the tensors of one file with one
// dtype, concatenated) tiled to one device buffer size. GB/s = 1e9
// uncompressed bytes per second, best of --repeat, timed with device events.
struct GpuSetResult {
  std::string set;       // file name, or "synthetic"
  std::string dtype;     // "bf16", "fp16", "fp32"
  uint64_t tensors = 0;
  uint64_t set_bytes = 0;     // the concatenated (untiled) tensors
  uint64_t buffer_mb = 0;     // requested size
  uint64_t buffer_bytes = 0;  // measured size (whole elements)
  uint64_t compressed_bytes = 0;
  double ratio = NAN;
  double decode_gbps = NAN, encode_gbps = NAN, d2d_copy_gbps = NAN;
  double decode_vs_copy = NAN, encode_vs_copy = NAN;
  bool round_trip_ok = false;  // device decode of the device encode equals the input (device hashes)
  bool cpu_bit_exact = false;  // see GpuReport::cpu_check
};

struct GpuReport {
  std::string backend;  // "cuda" or "simulator"
  std::string device;   // the driver's device name
  // Per set, once, on the untiled set bytes: the device encoder's bytes equal
  // nz_compress's, and the device decode of the CPU's stream equals the
  // CPU decode, byte for byte.
  std::string cpu_check = "device encode == CPU encode and device decode == CPU decode, byte for byte";
  std::vector<GpuSetResult> results;
};

// Fill the ratio-derived fields from bytes, compressed_bytes and bound_ratio.
inline void finish_figures(Figures& f) {
  if (f.bytes == 0) return;
  f.ratio = static_cast<double>(f.compressed_bytes) / static_cast<double>(f.bytes);
  if (!std::isnan(f.bound_ratio) && f.bound_ratio > 0) f.overhead_pct = (f.ratio / f.bound_ratio - 1.0) * 100.0;
  auto gbps = [&](double s) { return s > 0 ? static_cast<double>(f.bytes) / s / 1e9 : NAN; };
  f.encode_gbps_1t = gbps(f.encode_s_1t);
  f.decode_gbps_1t = gbps(f.decode_s_1t);
  f.decode_gbps_mt = gbps(f.decode_s_mt);
}

}  // namespace nzbench
