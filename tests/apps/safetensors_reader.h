// safetensors_reader.h: a minimal reader of the safetensors format
// (u64 little-endian header length, a JSON header mapping tensor names to
// dtype/shape/data_offsets, then the raw data). Only what minifw needs to
// borrow real weight values; errors are returned as text, never thrown.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minifw {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;            // "BF16", "F32", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;           // byte offsets into SafetensorsFile::data
  uint64_t end = 0;
};

struct SafetensorsFile {
  std::vector<SafetensorsTensor> tensors;  // in header order
  std::vector<unsigned char> data;         // the data section
};

// Reads and validates `path`. On failure returns false and sets `error`.
bool read_safetensors(const std::string& path, SafetensorsFile& out, std::string& error);

}  // namespace minifw
