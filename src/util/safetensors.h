// safetensors.h: a strict, bounds-checked reader for .safetensors files.
//
// Layout: u64 little-endian header size N, N bytes of JSON
//   {name: {"dtype": D, "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
// then the data section; offsets are relative to the start of the data section.
// Every rule is checked (known dtype, shape product * element size == end - begin
// without overflow, offsets inside the data section, no two tensors overlapping,
// unique names) so a malformed or hostile file yields an error message, never
// a crash or an out-of-range read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nz::util {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // as written: "BF16", "F16", "F32", "F64", "I32", ...
  size_t element_size = 0;
  std::vector<uint64_t> shape;
  uint64_t element_count = 0;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  // The bytes of one tensor (validated at parse time to lie in the file).
  std::span<const uint8_t> data(const SafetensorsTensor& t) const {
    return {bytes_.data() + data_start_ + t.begin, static_cast<size_t>(t.end - t.begin)};
  }
  uint64_t data_section_bytes() const { return bytes_.size() - data_start_; }

 private:
  friend bool parse_safetensors(std::vector<uint8_t> bytes, SafetensorsFile& out, std::string& error);
  std::vector<uint8_t> bytes_;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsTensor> tensors_;  // in header order
  std::vector<std::pair<std::string, std::string>> metadata_;
};

// Size in bytes of one element of a safetensors dtype; 0 when unknown.
size_t safetensors_dtype_size(const std::string& dtype);

// Parse a whole file held in memory. Returns false and sets `error` on any violation.
bool parse_safetensors(std::vector<uint8_t> bytes, SafetensorsFile& out, std::string& error);

// Read `path` and parse it; the error names the file.
bool load_safetensors(const std::string& path, SafetensorsFile& out, std::string& error);

// The bytes of the first `max_tensors` tensors whose dtype is `dtype`, back to
// back in header order (how the benchmarks and GPU tests build real inputs).
std::vector<uint8_t> concat_tensor_bytes(const SafetensorsFile& file, std::string_view dtype,
                                         size_t max_tensors = std::numeric_limits<size_t>::max());

// Read a whole file into memory (used by the other loaders too).
bool read_file_bytes(const std::string& path, std::vector<uint8_t>& out, std::string& error);

}  // namespace nz::util
