// compressed_weights.h: the weight variants nzeval compares. Every variant
// ends as fp32 weights for the same fp32/double forward pass; only the 2-D
// matrices change (weight_matrices()), the norm vectors stay fp32.
#pragma once

#include <cstdint>
#include <string>

#include "llama2_model.h"

namespace nzeval {

enum class Variant { Fp32, Bf16, Bf16Lossless, Bf16Lossy };

struct Method {
  std::string name;
  Variant variant = Variant::Fp32;
  uint32_t kept_bits = 0;  // lossy
  uint32_t block = 0;      // lossy, 0 = none
};

struct PreparedWeights {
  Llama2Weights weights;
  uint64_t matrix_bytes = 0;  // bytes the matrices occupy in this variant (compressed size when compressed)
  uint64_t matrix_elements = 0;
};

// Build `method`'s weights from the fp32 model. Each matrix of each layer is
// one buffer (as a framework holds it) cast to bf16, then compressed and
// decompressed with neuzip for the neuzip variants. Lossless is checked to
// decode to exactly the bf16 bytes. False with `error` on any codec failure.
bool prepare_weights(const Llama2Model& model, const Method& method, PreparedWeights& out, std::string& error);

}  // namespace nzeval
