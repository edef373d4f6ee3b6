// tokenizer.h: llama2.c's BPE tokenizer (tokenizer.bin format: int32
// max_token_length, then per token: float score, int32 length, bytes).
// Encoding follows llama2.c: BOS (1), a dummy-prefix space token, one token
// per UTF-8 code point (byte fallback: byte + 3), then repeatedly merge the
// adjacent pair whose concatenation is the highest-scoring vocabulary entry.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nzeval {

class Tokenizer {
 public:
  static constexpr int kBos = 1;

  // False with `error` on a malformed or truncated file.
  bool load(const std::string& path, int vocab_size, std::string& error);

  std::vector<int> encode(std::string_view text, bool bos) const;
  const std::string& piece(int id) const { return pieces_.at(static_cast<size_t>(id)); }
  int vocab_size() const { return static_cast<int>(pieces_.size()); }

 private:
  int lookup(const std::string& s) const;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> ids_;  // first id of each piece
};

}  // namespace nzeval
