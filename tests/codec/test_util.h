// test_util.h: helpers shared by the codec test suites.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "neuzip/neuzip.h"

namespace nz::test {

struct Compressed {
  nz_status status = NZ_OK;
  std::vector<uint8_t> bytes;
};

inline nz_options options(nz_dtype dtype, uint32_t chunk_elems = 0, uint32_t threads = 1) {
  nz_options o;
  nz_options_default(&o, dtype);
  if (chunk_elems) o.chunk_elems = chunk_elems;
  o.threads = threads;
  return o;
}

inline Compressed compress(const void* src, uint64_t n, const nz_options& o) {
  Compressed c;
  c.bytes.resize(nz_compress_bound(n, &o));
  size_t len = 0;
  c.status = nz_compress(src, n, &o, c.bytes.data(), c.bytes.size(), &len);
  c.bytes.resize(c.status == NZ_OK ? len : 0);
  return c;
}

// Decompresses into a buffer of exactly original_bytes (or `cap` when given).
inline nz_status decompress(const std::vector<uint8_t>& comp, std::vector<uint8_t>& out, uint32_t threads = 1) {
  nz_info info{};
  nz_status st = nz_inspect(comp.data(), comp.size(), &info);
  if (st != NZ_OK) return st;
  out.assign(info.original_bytes, 0xCD);
  return nz_decompress(comp.data(), comp.size(), out.data(), out.size(), threads);
}

inline std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Weight-like data: normal values of scale `sigma`, as the dtype's bits.
std::vector<uint8_t> gaussian_weights(nz_dtype dtype, size_t n, uint64_t seed, float sigma = 0.02f);

// Gaussian weights with roughly one element in `every` replaced by a special
// value (fp32: zeros, infinities, NaN payloads, subnormals, extremes) or by
// the next of all 65536 bit patterns (bf16, fp16), so the alphabet is full
// but rANS still pays.
std::vector<uint8_t> salted_weights(nz_dtype dtype, size_t n, uint64_t seed, size_t every = 7);

}  // namespace nz::test
