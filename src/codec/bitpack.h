// bitpack.h: LSB-first bit packing of fixed-width values (docs/FORMAT.md 3.1).
// Width is at most 24 bits (fp32 raw values), so a 64-bit window always holds
// a value plus the bits before it in the current byte.
#pragma once

#include <cstdint>
#include <cstring>

namespace nz::codec {

// Writes values at consecutive bit positions into a zeroed destination.
class BitWriter {
 public:
  explicit BitWriter(uint8_t* dst) : dst_(dst) {}

  void put(uint32_t value, uint32_t width) {
    acc_ |= uint64_t{value} << fill_;
    fill_ += width;
    while (fill_ >= 32) {
      uint32_t word = static_cast<uint32_t>(acc_);
      std::memcpy(dst_ + pos_, &word, 4);
      pos_ += 4;
      acc_ >>= 32;
      fill_ -= 32;
    }
  }

  // Writes the remaining bits; returns the number of bytes written.
  uint64_t finish() {
    while (fill_ > 0) {
      dst_[pos_++] = static_cast<uint8_t>(acc_);
      acc_ >>= 8;
      fill_ = fill_ > 8 ? fill_ - 8 : 0;
    }
    return pos_;
  }

 private:
  uint8_t* dst_;
  uint64_t pos_ = 0;
  uint64_t acc_ = 0;
  uint32_t fill_ = 0;
};

// Reads value `index` of width `width` from a section of `section_bytes`
// bytes. The caller guarantees (index + 1) * width <= section_bytes * 8.
inline uint32_t read_packed(const uint8_t* section, uint64_t section_bytes, uint64_t index,
                            uint32_t width) {
  uint64_t bit = index * width;
  uint64_t byte = bit / 8;
  uint64_t window = 0;
  uint64_t avail = section_bytes - byte;
  std::memcpy(&window, section + byte, avail >= 8 ? 8 : avail);
  return static_cast<uint32_t>((window >> (bit % 8)) & ((uint64_t{1} << width) - 1));
}

// True when every bit of the section past the first `used_bits` is zero.
inline bool packed_tail_is_zero(const uint8_t* section, uint64_t section_bytes, uint64_t used_bits) {
  uint64_t byte = used_bits / 8;
  if (used_bits % 8 != 0) {
    if ((section[byte] >> (used_bits % 8)) != 0) return false;
    ++byte;
  }
  for (; byte < section_bytes; ++byte) {
    if (section[byte] != 0) return false;
  }
  return true;
}

}  // namespace nz::codec
