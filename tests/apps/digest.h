// digest.h: a 64-bit FNV-1a hash, used to compare two runs bit for bit
// (every loss and every final weight byte goes through it).
#pragma once

#include <cstddef>
#include <cstdint>

namespace minifw {

class Digest {
 public:
  void add(const void* data, size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) {
      state_ ^= p[i];
      state_ *= 0x100000001b3ull;
    }
  }
  uint64_t value() const { return state_; }

 private:
  uint64_t state_ = 0xcbf29ce484222325ull;
};

}  // namespace minifw
