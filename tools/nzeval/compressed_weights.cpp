// compressed_weights.cpp: bf16 casts and neuzip round trips of the matrices.
#include "compressed_weights.h"

#include <cstring>
#include <vector>

#include <fmt/format.h>
#include <neuzip/neuzip.h>

#include "common/float_bits.h"

namespace nzeval {

bool prepare_weights(const Llama2Model& model, const Method& method, PreparedWeights& out, std::string& error) {
  out.weights = model.weights;
  out.matrix_bytes = 0;
  out.matrix_elements = 0;
  for (const MatrixRef& m : weight_matrices(model.config, out.weights)) {
    float* values = m.storage->data() + m.offset;
    out.matrix_elements += m.count;
    if (method.variant == Variant::Fp32) {
      out.matrix_bytes += 4 * m.count;
      continue;
    }
    std::vector<uint16_t> bf16(m.count);
    for (size_t i = 0; i < m.count; ++i) bf16[i] = nztools::f32_to_bf16(values[i]);
    std::vector<uint16_t> decoded = bf16;
    if (method.variant == Variant::Bf16) {
      out.matrix_bytes += 2 * m.count;
    } else {
      nz_options o;
      std::memset(&o, 0, sizeof o);
      nz_options_default(&o, NZ_BF16);
      if (method.variant == Variant::Bf16Lossy) {
        o.mode = NZ_LOSSY;
        o.kept_bits = method.kept_bits;
        o.block_size = method.block;
      }
      std::vector<uint8_t> compressed(nz_compress_bound(m.count, &o));
      size_t len = 0;
      nz_status s = nz_compress(bf16.data(), m.count, &o, compressed.data(), compressed.size(), &len);
      if (s == NZ_OK) s = nz_decompress(compressed.data(), len, decoded.data(), decoded.size() * 2, 1);
      if (s != NZ_OK) {
        error = fmt::format("{}: {}: neuzip failed: {}", method.name, m.name, nz_error_string(s));
        return false;
      }
      if (method.variant == Variant::Bf16Lossless && decoded != bf16) {
        error = fmt::format("{}: {}: lossless decode differs from the bf16 weights", method.name, m.name);
        return false;
      }
      out.matrix_bytes += len;
    }
    for (size_t i = 0; i < m.count; ++i) values[i] = nztools::bf16_to_f32(decoded[i]);
  }
  return true;
}

}  // namespace nzeval
