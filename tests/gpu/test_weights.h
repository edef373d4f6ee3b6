// test_weights.h: the real weight files the GPU tests feed the codecs, read
// with the strict safetensors reader of src/util. Header-only, since the
// kernel emulation test links nothing of gpu_test_env.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "util/safetensors.h"

#ifndef NZ_WEIGHTS_DIR
#define NZ_WEIGHTS_DIR "../shared/weights"
#endif

namespace nz::gpu::test {

// NZ_WEIGHTS_DIR in the environment wins (a bundle run on a GPU machine).
inline std::string weights_dir() {
  const char* env = std::getenv("NZ_WEIGHTS_DIR");
  return env != nullptr && *env != '\0' ? env : NZ_WEIGHTS_DIR;
}

// The first `max_tensors` tensors of `dtype` in weights_dir()/`file`, back to
// back; a failed read is a test failure.
inline std::vector<uint8_t> real_tensor_bytes(const std::string& file, const std::string& dtype,
                                              size_t max_tensors) {
  nz::util::SafetensorsFile parsed;
  std::string error;
  EXPECT_TRUE(nz::util::load_safetensors(weights_dir() + "/" + file, parsed, error)) << error;
  return nz::util::concat_tensor_bytes(parsed, dtype, max_tensors);
}

}  // namespace nz::gpu::test
