// safetensors_reader.h: the raw bytes of the tensors of one dtype in a
// .safetensors file (u64 LE header length, JSON header, data). Only what the
// GPU tests and benchmark need: a tiny scanner for "dtype" and "data_offsets"
// of each entry, no general JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nz::gpu {

struct TensorBytes {
  std::string name;
  std::vector<uint8_t> bytes;
};

// Every tensor whose dtype string equals `dtype` ("BF16", "F32", "F16"), in
// file order. Returns false with `error` when the file is unreadable or malformed.
bool read_safetensors(const std::string& path, const std::string& dtype, std::vector<TensorBytes>& out,
                      std::string& error);

}  // namespace nz::gpu
