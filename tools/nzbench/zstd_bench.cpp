// zstd_bench.cpp: the zstd peer, measured on the same bytes as neuzip.
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "codec_bench.h"

#ifdef NZBENCH_HAVE_ZSTD
#include <zstd.h>
#endif

namespace nzbench {

#ifndef NZBENCH_HAVE_ZSTD

bool zstd_available() { return false; }
bool bench_zstd(const Options&, int, const BenchTensor&, Figures&, std::string& error) {
  error = "built without zstd";
  return false;
}

#else

namespace {

struct Piece {
  size_t begin = 0, size = 0;  // in the input
  std::vector<uint8_t> frame;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool compress_once(ZSTD_CCtx* cctx, int level, const uint8_t* src, size_t len, std::vector<uint8_t>& frame,
                   std::string& error) {
  frame.resize(ZSTD_compressBound(len));
  const size_t r = ZSTD_compressCCtx(cctx, frame.data(), frame.size(), src, len, level);
  if (ZSTD_isError(r)) {
    error = fmt::format("zstd -{} encode failed: {}", level, ZSTD_getErrorName(r));
    return false;
  }
  frame.resize(r);
  return true;
}

}  // namespace

bool zstd_available() { return true; }

bool bench_zstd(const Options& opts, int level, const BenchTensor& t, Figures& out, std::string& error) {
  const unsigned repeat = opts.repeat ? opts.repeat : 1;
  const size_t len = t.data.size();
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), &ZSTD_freeCCtx);
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), &ZSTD_freeDCtx);
  if (!cctx || !dctx) {
    error = "zstd: out of memory";
    return false;
  }
  std::vector<uint8_t> frame;
  double best_enc = INFINITY;
  for (unsigned r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!compress_once(cctx.get(), level, t.data.data(), len, frame, error)) return false;
    best_enc = std::min(best_enc, seconds_since(t0));
  }

  std::vector<uint8_t> decoded(len);
  double best_dec = INFINITY;
  for (unsigned r = 0; r < repeat; ++r) {
    std::fill(decoded.begin(), decoded.end(), uint8_t{0xA5});
    const auto t0 = std::chrono::steady_clock::now();
    const size_t got = ZSTD_decompressDCtx(dctx.get(), decoded.data(), len, frame.data(), frame.size());
    const double sec = seconds_since(t0);
    if (ZSTD_isError(got) || got != len || decoded != t.data) {
      error = fmt::format("zstd -{} decode does not reproduce the input", level);
      return false;
    }
    best_dec = std::min(best_dec, sec);
  }

  // Multi-thread decode: a zstd frame decodes serially, so split the input
  // into one independent frame per thread (element-aligned), compress those
  // (untimed, in parallel) and time their parallel decode.
  const unsigned threads = std::max(1u, opts.threads);
  const size_t elem = static_cast<size_t>(nztools::layout_of(t.type).bytes);
  const size_t elems = len / elem;
  std::vector<Piece> pieces;
  for (unsigned i = 0; i < threads; ++i) {
    const size_t b = elems * i / threads * elem, e = elems * (i + 1) / threads * elem;
    if (e > b) pieces.push_back({b, e - b, {}});
  }
  std::vector<std::string> errors(pieces.size());
  {
    std::vector<std::thread> workers;
    for (size_t i = 0; i < pieces.size(); ++i) {
      workers.emplace_back([&, i] {
        std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> c(ZSTD_createCCtx(), &ZSTD_freeCCtx);
        if (!c) errors[i] = "zstd: out of memory";
        else compress_once(c.get(), level, t.data.data() + pieces[i].begin, pieces[i].size, pieces[i].frame, errors[i]);
      });
    }
    for (auto& w : workers) w.join();
  }
  for (const auto& e : errors)
    if (!e.empty()) { error = e; return false; }

  // One decompression context per piece, made before timing.
  std::vector<std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)>> piece_dctx;
  for (size_t i = 0; i < pieces.size(); ++i) {
    piece_dctx.emplace_back(ZSTD_createDCtx(), &ZSTD_freeDCtx);
    if (!piece_dctx.back()) { error = "zstd: out of memory"; return false; }
  }
  double best_mt = INFINITY;
  for (unsigned r = 0; r < repeat; ++r) {
    std::fill(decoded.begin(), decoded.end(), uint8_t{0xA5});
    std::vector<int> ok(pieces.size(), 0);
    const auto t0 = std::chrono::steady_clock::now();
    {
      std::vector<std::thread> workers;
      for (size_t i = 0; i < pieces.size(); ++i) {
        workers.emplace_back([&, i] {
          const size_t got = ZSTD_decompressDCtx(piece_dctx[i].get(), decoded.data() + pieces[i].begin,
                                                 pieces[i].size, pieces[i].frame.data(), pieces[i].frame.size());
          ok[i] = !ZSTD_isError(got) && got == pieces[i].size;
        });
      }
      for (auto& w : workers) w.join();
    }
    const double sec = seconds_since(t0);
    for (int k : ok)
      if (!k) { error = fmt::format("zstd -{} parallel decode failed", level); return false; }
    if (decoded != t.data) {
      error = fmt::format("zstd -{} parallel decode does not reproduce the input", level);
      return false;
    }
    best_mt = std::min(best_mt, sec);
  }

  out.bytes = len;
  out.compressed_bytes = frame.size();
  out.encode_s_1t = best_enc;
  out.decode_s_1t = best_dec;
  out.decode_s_mt = best_mt;
  return true;
}

#endif

}  // namespace nzbench
