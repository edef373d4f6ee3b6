// tokenizer.cpp: llama2.c-compatible BPE encode (see header).
#include "tokenizer.h"

#include <cstring>

#include <fmt/format.h>

#include "util/safetensors.h"

namespace nzeval {

bool Tokenizer::load(const std::string& path, int vocab_size, std::string& error) {
  std::vector<uint8_t> bytes;
  if (!nz::util::read_file_bytes(path, bytes, error)) return false;
  size_t at = 0;
  auto read = [&](void* dst, size_t n) {
    if (bytes.size() - at < n) return false;
    std::memcpy(dst, bytes.data() + at, n);
    at += n;
    return true;
  };
  int32_t max_len = 0;
  if (!read(&max_len, 4) || max_len <= 0) {
    error = fmt::format("{}: bad tokenizer header", path);
    return false;
  }
  pieces_.clear();
  scores_.clear();
  ids_.clear();
  for (int i = 0; i < vocab_size; ++i) {
    float score = 0;
    int32_t len = 0;
    if (!read(&score, 4) || !read(&len, 4) || len < 0 || static_cast<size_t>(len) > bytes.size() - at) {
      error = fmt::format("{}: truncated or malformed at token {}", path, i);
      return false;
    }
    std::string piece(reinterpret_cast<const char*>(bytes.data() + at), static_cast<size_t>(len));
    at += static_cast<size_t>(len);
    ids_.emplace(piece, i);
    pieces_.push_back(std::move(piece));
    scores_.push_back(score);
  }
  return true;
}

int Tokenizer::lookup(const std::string& s) const {
  auto it = ids_.find(s);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool bos) const {
  std::vector<int> tokens;
  if (bos) tokens.push_back(kBos);
  if (!text.empty()) {
    const int space = lookup(" ");
    if (space >= 0) tokens.push_back(space);
  }
  std::string cp;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) cp.clear();  // a new code point starts
    cp += static_cast<char>(c);
    const bool continues = i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
    if (continues && cp.size() < 4) continue;
    const int id = lookup(cp);
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (unsigned char b : cp) tokens.push_back(static_cast<int>(b) + 3);  // byte fallback
    }
    cp.clear();
  }
  // Greedy merges by score; ties go to the leftmost pair (strict >).
  const size_t first = bos ? 1 : 0;
  for (;;) {
    float best_score = -1e10f;
    int best_id = -1;
    size_t best_at = 0;
    for (size_t i = first; i + 1 < tokens.size(); ++i) {
      const int id = lookup(piece(tokens[i]) + piece(tokens[i + 1]));
      if (id >= 0 && scores_[static_cast<size_t>(id)] > best_score) {
        best_score = scores_[static_cast<size_t>(id)];
        best_id = id;
        best_at = i;
      }
    }
    if (best_id < 0) break;
    tokens[best_at] = best_id;
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
  }
  return tokens;
}

}  // namespace nzeval
