#include "test_util.h"

#include <bit>
#include <cstring>
#include <iterator>

#include "codec/dtype.h"
#include "codec/lossy.h"

namespace nz::test {

std::vector<uint8_t> gaussian_weights(nz_dtype dtype, size_t n, uint64_t seed, float sigma) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  const auto layout = nz::codec::dtype_layout(dtype);
  std::vector<uint8_t> v(n * layout.bytes);
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits = std::bit_cast<uint32_t>(dist(rng));
    uint32_t e = nz::codec::f32_bits_to_element(bits, layout);
    std::memcpy(v.data() + i * layout.bytes, &e, layout.bytes);
  }
  return v;
}

std::vector<uint8_t> salted_weights(nz_dtype dtype, size_t n, uint64_t seed, size_t every) {
  static const uint32_t kFp32Specials[] = {
      0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00001u, 0x7F800001u,
      0x7FBFFFFFu, 0xFFFFFFFFu, 0x00000001u, 0x80000001u, 0x007FFFFFu, 0x807FFFFFu, 0x00400000u,
      0x00800000u, 0x80800000u, 0x7F7FFFFFu, 0xFF7FFFFFu, 0x3F800000u, 0xBF800000u};
  auto data = gaussian_weights(dtype, n, seed);
  std::mt19937_64 rng(seed * 31 + 1);
  uint32_t next = static_cast<uint32_t>(seed * 977);
  for (size_t i = 0; i < n; ++i) {
    if (rng() % every != 0) continue;
    if (dtype == NZ_FP32) {
      const uint32_t v = kFp32Specials[next++ % std::size(kFp32Specials)];
      std::memcpy(data.data() + 4 * i, &v, 4);
    } else {
      const uint16_t v = static_cast<uint16_t>(next++ * 40503u);
      std::memcpy(data.data() + 2 * i, &v, 2);
    }
  }
  return data;
}

}  // namespace nz::test
