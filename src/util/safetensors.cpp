// safetensors.cpp: see safetensors.h for the rules enforced.
#include "util/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "util/json_value.h"

namespace nz::util {

namespace {

// The reference implementation refuses headers over 100 MB; so do we, which
// also bounds the parser's memory on hostile input.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

bool checked_mul(uint64_t a, uint64_t b, uint64_t& out) {
  if (a != 0 && b > UINT64_MAX / a) return false;
  out = a * b;
  return true;
}

bool parse_tensor(const std::string& name, const json::Value& v, uint64_t data_bytes,
                  SafetensorsTensor& t, std::string& error) {
  t.name = name;
  if (!v.is_object()) {
    error = fmt::format("tensor '{}': entry is not an object", name);
    return false;
  }
  const json::Value* dtype = v.find("dtype");
  const json::Value* shape = v.find("shape");
  const json::Value* offsets = v.find("data_offsets");
  if (!dtype || !dtype->is_string()) {
    error = fmt::format("tensor '{}': missing or non-string dtype", name);
    return false;
  }
  t.dtype = dtype->text;
  t.element_size = safetensors_dtype_size(t.dtype);
  if (t.element_size == 0) {
    error = fmt::format("tensor '{}': unknown dtype '{}'", name, t.dtype);
    return false;
  }
  if (!shape || !shape->is_array()) {
    error = fmt::format("tensor '{}': missing or non-array shape", name);
    return false;
  }
  uint64_t count = 1;
  for (const auto& d : shape->items) {
    auto dim = d.as_u64();
    if (!dim) {
      error = fmt::format("tensor '{}': shape holds a value that is not a non-negative integer", name);
      return false;
    }
    if (!checked_mul(count, *dim, count)) {
      error = fmt::format("tensor '{}': element count overflows", name);
      return false;
    }
    t.shape.push_back(*dim);
  }
  t.element_count = count;
  if (!offsets || !offsets->is_array() || offsets->items.size() != 2) {
    error = fmt::format("tensor '{}': data_offsets must be an array [begin, end]", name);
    return false;
  }
  auto begin = offsets->items[0].as_u64();
  auto end = offsets->items[1].as_u64();
  if (!begin || !end) {
    error = fmt::format("tensor '{}': data_offsets must be non-negative integers", name);
    return false;
  }
  if (*begin > *end || *end > data_bytes) {
    error = fmt::format("tensor '{}': data_offsets [{}, {}] outside the data section of {} bytes",
                        name, *begin, *end, data_bytes);
    return false;
  }
  uint64_t expected = 0;
  if (!checked_mul(count, t.element_size, expected) || expected != *end - *begin) {
    error = fmt::format("tensor '{}': shape needs {} elements of {} bytes but data_offsets span {} bytes",
                        name, count, t.element_size, *end - *begin);
    return false;
  }
  t.begin = *begin;
  t.end = *end;
  for (const auto& [key, unused] : v.members) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      error = fmt::format("tensor '{}': unexpected field '{}'", name, key);
      return false;
    }
  }
  return true;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::pair<const char*, size_t> kSizes[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
      {"I64", 8},  {"U64", 8}, {"F64", 8}};
  for (const auto& [name, size] : kSizes)
    if (dtype == name) return size;
  return 0;
}

bool parse_safetensors(std::vector<uint8_t> bytes, SafetensorsFile& out, std::string& error) {
  out = SafetensorsFile{};
  if (bytes.size() < 8) {
    error = fmt::format("file too short for the 8-byte header size ({} bytes)", bytes.size());
    return false;
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | bytes[static_cast<size_t>(i)];
  if (header_bytes > kMaxHeaderBytes) {
    error = fmt::format("header size {} exceeds the limit of {} bytes", header_bytes, kMaxHeaderBytes);
    return false;
  }
  if (header_bytes > bytes.size() - 8) {
    error = fmt::format("truncated: header declares {} bytes but only {} follow", header_bytes,
                        bytes.size() - 8);
    return false;
  }
  std::string_view header(reinterpret_cast<const char*>(bytes.data()) + 8, header_bytes);
  json::ParseError perr;
  auto root = json::parse(header, &perr);
  if (!root) {
    error = fmt::format("bad header JSON at byte {}: {}", perr.offset, perr.message);
    return false;
  }
  if (!root->is_object()) {
    error = "header JSON is not an object";
    return false;
  }
  const uint64_t data_start = 8 + header_bytes;
  const uint64_t data_bytes = bytes.size() - data_start;
  std::set<std::string> names;
  std::vector<SafetensorsTensor> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;
  for (const auto& [name, value] : root->members) {
    if (!names.insert(name).second) {
      error = fmt::format("duplicate key '{}' in header", name);
      return false;
    }
    if (name == "__metadata__") {
      if (!value.is_object()) {
        error = "__metadata__ is not an object";
        return false;
      }
      for (const auto& [k, v] : value.members) {
        if (!v.is_string()) {
          error = fmt::format("__metadata__ value of '{}' is not a string", k);
          return false;
        }
        metadata.emplace_back(k, v.text);
      }
      continue;
    }
    SafetensorsTensor t;
    if (!parse_tensor(name, value, data_bytes, t, error)) return false;
    tensors.push_back(std::move(t));
  }
  // No two tensors may share a byte (empty tensors share nothing).
  std::vector<const SafetensorsTensor*> order;
  for (const auto& t : tensors)
    if (t.end > t.begin) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->begin < order[i - 1]->end) {
      error = fmt::format("tensors '{}' and '{}' overlap", order[i - 1]->name, order[i]->name);
      return false;
    }
  }
  out.bytes_ = std::move(bytes);
  out.data_start_ = data_start;
  out.tensors_ = std::move(tensors);
  out.metadata_ = std::move(metadata);
  return true;
}

std::vector<uint8_t> concat_tensor_bytes(const SafetensorsFile& file, std::string_view dtype,
                                         size_t max_tensors) {
  std::vector<uint8_t> out;
  size_t taken = 0;
  for (const auto& t : file.tensors()) {
    if (taken == max_tensors) break;
    if (t.dtype != dtype) continue;
    const auto bytes = file.data(t);
    out.insert(out.end(), bytes.begin(), bytes.end());
    ++taken;
  }
  return out;
}

bool read_file_bytes(const std::string& path, std::vector<uint8_t>& out, std::string& error) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) {
    error = fmt::format("{}: cannot open: {}", path, std::strerror(errno));
    return false;
  }
  out.clear();
  uint8_t buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) out.insert(out.end(), buf, buf + n);
  if (std::ferror(f.get())) {
    error = fmt::format("{}: read error", path);
    return false;
  }
  return true;
}

bool load_safetensors(const std::string& path, SafetensorsFile& out, std::string& error) {
  std::vector<uint8_t> bytes;
  if (!read_file_bytes(path, bytes, error)) return false;
  if (!parse_safetensors(std::move(bytes), out, error)) {
    error = fmt::format("{}: {}", path, error);
    return false;
  }
  return true;
}

}  // namespace nz::util
