// neuzip_bench.cpp: timing and verifying the neuzip CPU codec.
#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <neuzip/neuzip.h>

#include "codec_bench.h"
#include "codec_options.h"

namespace nzbench {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Relative error of the lossy decode against the input, over finite non-zero inputs.
void lossy_errors(const BenchTensor& t, const std::vector<uint8_t>& decoded, Figures& out) {
  double max_rel = 0.0, sum_rel = 0.0;
  uint64_t counted = 0;
  const uint64_t n = t.elements();
  for (uint64_t i = 0; i < n; ++i) {
    const double x = nztools::element_as_f32(t.data.data(), i, t.type);
    if (!std::isfinite(x) || x == 0.0) continue;
    const double y = nztools::element_as_f32(decoded.data(), i, t.type);
    const double rel = std::fabs(y - x) / std::fabs(x);
    max_rel = std::max(max_rel, rel);
    sum_rel += rel;
    ++counted;
  }
  out.max_rel_error = max_rel;
  out.mean_rel_error = counted ? sum_rel / static_cast<double>(counted) : 0.0;
}

}  // namespace

bool bench_neuzip(const Options& opts, const BenchTensor& t, Figures& out, std::string& error) {
  const uint64_t n = t.elements();
  const nz_options o = codec_options(opts, t.type);
  std::vector<uint8_t> compressed(nz_compress_bound(n, &o));
  size_t compressed_len = 0;
  const unsigned repeat = opts.repeat ? opts.repeat : 1;

  double best_enc = INFINITY;
  for (unsigned r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const nz_status s = nz_compress(t.data.data(), n, &o, compressed.data(), compressed.size(), &compressed_len);
    const double sec = seconds_since(t0);
    if (s != NZ_OK) {
      error = fmt::format("neuzip encode failed: {}", nz_error_string(s));
      return false;
    }
    best_enc = std::min(best_enc, sec);
  }
  nz_info info;
  if (nz_status s = nz_inspect(compressed.data(), compressed_len, &info); s != NZ_OK) {
    error = fmt::format("neuzip: inspecting our own output failed: {}", nz_error_string(s));
    return false;
  }
  if (info.compressed_bytes != compressed_len || info.element_count != n) {
    error = "neuzip: header disagrees with the encode (size or element count)";
    return false;
  }

  std::vector<uint8_t> decoded(t.data.size()), reference;
  // Decode `threads` ways `repeat` times; verify each result outside the timed region.
  auto timed_decodes = [&](uint32_t threads, double& best) {
    best = INFINITY;
    for (unsigned r = 0; r < repeat; ++r) {
      std::fill(decoded.begin(), decoded.end(), uint8_t{0xA5});  // a stale buffer must not pass
      const auto t0 = std::chrono::steady_clock::now();
      const nz_status s = nz_decompress(compressed.data(), compressed_len, decoded.data(), decoded.size(), threads);
      const double sec = seconds_since(t0);
      if (s != NZ_OK) {
        error = fmt::format("neuzip decode ({} threads) failed: {}", threads, nz_error_string(s));
        return false;
      }
      best = std::min(best, sec);
      if (opts.mode == Mode::Lossless) {
        if (decoded != t.data) {
          error = fmt::format("neuzip lossless decode ({} threads) differs from the input", threads);
          return false;
        }
      } else if (reference.empty()) {
        reference = decoded;
      } else if (decoded != reference) {
        error = fmt::format("neuzip lossy decode ({} threads) differs from the first decode", threads);
        return false;
      }
    }
    return true;
  };
  double best_dec_1t = 0, best_dec_mt = 0;
  if (!timed_decodes(1, best_dec_1t)) return false;
  if (!timed_decodes(opts.threads, best_dec_mt)) return false;

  out.bytes = t.data.size();
  out.compressed_bytes = compressed_len;
  out.encode_s_1t = best_enc;
  out.decode_s_1t = best_dec_1t;
  out.decode_s_mt = best_dec_mt;
  if (opts.mode == Mode::Lossy) lossy_errors(t, reference, out);
  return true;
}

}  // namespace nzbench
