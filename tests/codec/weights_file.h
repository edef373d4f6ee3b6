// weights_file.h: the raw tensor bytes of a safetensors file (everything after
// the u64 header length and the JSON header), for tests and the benchmark.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace nz::test {

inline std::string weights_dir() {
#ifdef NZ_WEIGHTS_DIR
  return NZ_WEIGHTS_DIR;
#else
  return "../shared/weights";
#endif
}

// Empty when the file is missing or malformed.
inline std::vector<uint8_t> safetensors_payload(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  std::vector<uint8_t> all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (all.size() < 8) return {};
  uint64_t header_len = 0;
  std::memcpy(&header_len, all.data(), 8);
  if (header_len > all.size() - 8) return {};
  return std::vector<uint8_t>(all.begin() + 8 + static_cast<std::ptrdiff_t>(header_len), all.end());
}

}  // namespace nz::test
