#include "test_util.h"

#include <bit>
#include <cstring>

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

}  // namespace nz::test
