// safetensors_reader.cpp: parses the JSON header with a small recursive
// descent parser (objects, arrays, strings, integers; other values skipped).
#include "safetensors_reader.h"

#include <cstdio>
#include <cstring>
#include <memory>

namespace minifw {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the format's own limit

// A JSON cursor over the header text. Every method returns false on a
// syntax error; the caller turns that into one message.
class JsonCursor {
 public:
  explicit JsonCursor(const std::string& text) : text_(text) {}

  void skip_space() {
    while (pos_ < text_.size() && std::strchr(" \t\r\n", text_[pos_]) != nullptr) ++pos_;
  }
  bool consume(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  bool string(std::string& out) {
    out.clear();
    if (!consume('"')) return false;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c == '\\') {
        if (pos_ >= text_.size()) return false;
        c = text_[pos_++];
        if (c == 'u') {  // names we need are ASCII; keep escapes opaque
          if (pos_ + 4 > text_.size()) return false;
          pos_ += 4;
          c = '?';
        }
      }
      out.push_back(c);
    }
    return consume('"');
  }
  bool integer(int64_t& out) {
    skip_space();
    size_t start = pos_;
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') return false;
    out = 0;
    bool negative = text_[start] == '-';
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      out = out * 10 + (text_[pos_++] - '0');
    }
    if (negative) out = -out;
    return true;
  }
  bool integer_array(std::vector<int64_t>& out) {
    out.clear();
    if (!consume('[')) return false;
    if (consume(']')) return true;
    do {
      int64_t v;
      if (!integer(v)) return false;
      out.push_back(v);
    } while (consume(','));
    return consume(']');
  }
  // Skips any value (used for __metadata__ and unknown keys).
  bool skip_value() {
    skip_space();
    if (pos_ >= text_.size()) return false;
    char c = text_[pos_];
    if (c == '"') {
      std::string ignored;
      return string(ignored);
    }
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++pos_;
      if (consume(close)) return true;
      do {
        if (close == '}') {
          std::string key;
          if (!string(key) || !consume(':')) return false;
        }
        if (!skip_value()) return false;
      } while (consume(','));
      return consume(close);
    }
    while (pos_ < text_.size() && std::strchr(",}] \t\r\n", text_[pos_]) == nullptr) ++pos_;
    return true;
  }

 private:
  const std::string& text_;
  size_t pos_ = 0;
};

bool parse_tensor_entry(JsonCursor& json, SafetensorsTensor& tensor) {
  if (!json.consume('{')) return false;
  if (json.consume('}')) return true;
  do {
    std::string key;
    if (!json.string(key) || !json.consume(':')) return false;
    if (key == "dtype") {
      if (!json.string(tensor.dtype)) return false;
    } else if (key == "shape") {
      if (!json.integer_array(tensor.shape)) return false;
    } else if (key == "data_offsets") {
      std::vector<int64_t> offsets;
      if (!json.integer_array(offsets) || offsets.size() != 2) return false;
      if (offsets[0] < 0 || offsets[1] < offsets[0]) return false;
      tensor.begin = static_cast<uint64_t>(offsets[0]);
      tensor.end = static_cast<uint64_t>(offsets[1]);
    } else if (!json.skip_value()) {
      return false;
    }
  } while (json.consume(','));
  return json.consume('}');
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

bool read_safetensors(const std::string& path, SafetensorsFile& out, std::string& error) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    error = "cannot open " + path;
    return false;
  }
  unsigned char length_bytes[8];
  if (std::fread(length_bytes, 1, 8, file.get()) != 8) {
    error = path + ": too short for a safetensors header";
    return false;
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | length_bytes[i];
  if (header_len == 0 || header_len > kMaxHeaderBytes) {
    error = path + ": implausible header length";
    return false;
  }
  std::string header(header_len, '\0');
  if (std::fread(header.data(), 1, header_len, file.get()) != header_len) {
    error = path + ": truncated header";
    return false;
  }
  out.tensors.clear();
  JsonCursor json(header);
  bool ok = json.consume('{');
  if (ok && !json.consume('}')) {
    do {
      std::string name;
      if (!(ok = json.string(name) && json.consume(':'))) break;
      if (name == "__metadata__") {
        ok = json.skip_value();
      } else {
        SafetensorsTensor tensor;
        tensor.name = name;
        ok = parse_tensor_entry(json, tensor);
        if (ok) out.tensors.push_back(std::move(tensor));
      }
    } while (ok && json.consume(','));
    ok = ok && json.consume('}');
  }
  if (!ok) {
    error = path + ": malformed JSON header";
    return false;
  }
  // The data section is the rest of the file.
  out.data.clear();
  unsigned char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
    out.data.insert(out.data.end(), buffer, buffer + n);
  }
  for (const auto& t : out.tensors) {
    if (t.end > out.data.size()) {
      error = path + ": tensor " + t.name + " lies past the end of the file";
      return false;
    }
  }
  return true;
}

}  // namespace minifw
