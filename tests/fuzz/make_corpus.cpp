// make_corpus: writes the fuzzer's seed corpus, a few small valid buffers of
// each dtype and mode, into the folder given as argv[1].
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "neuzip/neuzip.h"

namespace {

std::vector<uint8_t> weights(nz_dtype dtype, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<uint8_t> v(n * nz_dtype_size(dtype));
  for (size_t i = 0; i < n; ++i) {
    float f = d(rng);
    uint32_t b;
    std::memcpy(&b, &f, 4);
    if (dtype == NZ_FP32) {
      std::memcpy(&v[4 * i], &b, 4);
    } else if (dtype == NZ_BF16) {
      uint16_t h = static_cast<uint16_t>(b >> 16);
      std::memcpy(&v[2 * i], &h, 2);
    } else {
      // fp16 from float: small normal range is enough for seeds (truncating).
      int e = static_cast<int>((b >> 23) & 0xFF) - 127 + 15;
      uint16_t h = static_cast<uint16_t>((b >> 16) & 0x8000);
      if (e > 0 && e < 31) h |= static_cast<uint16_t>((e << 10) | ((b >> 13) & 0x3FF));
      std::memcpy(&v[2 * i], &h, 2);
    }
  }
  return v;
}

bool write(const std::string& dir, const std::string& name, const std::vector<uint8_t>& src, size_t n,
           nz_options o) {
  std::vector<uint8_t> out(nz_compress_bound(n, &o));
  size_t len = 0;
  if (nz_compress(src.data(), n, &o, out.data(), out.size(), &len) != NZ_OK) return false;
  std::FILE* f = std::fopen((dir + "/" + name).c_str(), "wb");
  if (!f) return false;
  std::fwrite(out.data(), 1, len, f);
  std::fclose(f);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;
  const struct {
    const char* name;
    nz_dtype dtype;
  } dtypes[] = {{"bf16", NZ_BF16}, {"fp16", NZ_FP16}, {"fp32", NZ_FP32}};
  for (const auto& d : dtypes) {
    nz_options o;
    nz_options_default(&o, d.dtype);
    o.chunk_elems = 1024;
    o.threads = 1;
    auto w = weights(d.dtype, 1500, 1);
    ok &= write(dir, std::string(d.name) + "_lossless", w, 1500, o);
    std::vector<uint8_t> noise(1100 * nz_dtype_size(d.dtype));
    std::mt19937 rng(2);
    for (auto& b : noise) b = static_cast<uint8_t>(rng());
    ok &= write(dir, std::string(d.name) + "_packed", noise, 1100, o);
    o.mode = NZ_LOSSY;
    o.kept_bits = 2;
    ok &= write(dir, std::string(d.name) + "_lossy_k2", w, 1500, o);
    o.block_size = 64;
    ok &= write(dir, std::string(d.name) + "_lossy_k2_b64", w, 1500, o);
  }
  nz_options o;
  nz_options_default(&o, NZ_BF16);
  ok &= write(dir, "empty", {}, 0, o);
  return ok ? 0 : 1;
}
