#include "gpu/safetensors_reader.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>

namespace nz::gpu {
namespace {

// Position just after the closing quote of the JSON string starting at `at`.
size_t skip_string(const std::string& s, size_t at) {
  for (size_t i = at + 1; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return std::string::npos;
}

}  // namespace

bool read_safetensors(const std::string& path, const std::string& dtype, std::vector<TensorBytes>& out,
                      std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot open {}", path);
    return false;
  }
  std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (file.size() < 8) {
    error = fmt::format("{}: too short", path);
    return false;
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);  // little-endian host assumed (x86-64, aarch64)
  if (header_len > file.size() - 8) {
    error = fmt::format("{}: header length {} past the end", path, header_len);
    return false;
  }
  const std::string json(reinterpret_cast<const char*>(file.data() + 8), header_len);
  const uint64_t data_start = 8 + header_len;
  // Each tensor entry: "name": {"dtype": "...", "shape": [...], "data_offsets": [a, b]}
  size_t at = json.find('{');
  while (at != std::string::npos) {
    size_t name_at = json.find('"', at + 1);
    if (name_at == std::string::npos) break;
    size_t name_end = skip_string(json, name_at);
    if (name_end == std::string::npos) break;
    std::string name = json.substr(name_at + 1, name_end - name_at - 2);
    size_t open = json.find_first_not_of(" \t\r\n:", name_end);
    if (open == std::string::npos || json[open] != '{') break;
    size_t close = json.find('}', open);
    if (close == std::string::npos) break;
    const std::string entry = json.substr(open, close - open + 1);
    at = json.find_first_of(",}", close + 1);
    if (at != std::string::npos && json[at] == '}') at = std::string::npos;
    if (name == "__metadata__") continue;
    size_t d = entry.find("\"dtype\"");
    size_t o = entry.find("\"data_offsets\"");
    if (d == std::string::npos || o == std::string::npos) continue;
    size_t dq = entry.find('"', entry.find(':', d) + 1);
    std::string entry_dtype = entry.substr(dq + 1, entry.find('"', dq + 1) - dq - 1);
    unsigned long long begin = 0, end = 0;
    if (std::sscanf(entry.c_str() + entry.find('[', o), "[%llu , %llu]", &begin, &end) != 2 || end < begin ||
        data_start + end > file.size()) {
      error = fmt::format("{}: bad data_offsets for {}", path, name);
      return false;
    }
    if (entry_dtype != dtype) continue;
    out.push_back({name, std::vector<uint8_t>(file.begin() + static_cast<std::ptrdiff_t>(data_start + begin),
                                              file.begin() + static_cast<std::ptrdiff_t>(data_start + end))});
  }
  return true;
}

}  // namespace nz::gpu
