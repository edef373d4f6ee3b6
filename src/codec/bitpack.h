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

// Reads consecutive values of one width from a section, from value `first`
// on, through a 64-bit window refilled a word at a time. Never reads past
// the section's `section_bytes`.
class BitReader {
 public:
  BitReader(const uint8_t* section, uint64_t section_bytes, uint64_t first, uint32_t width)
      : src_(section), size_(section_bytes), pos_(first * width / 8), width_(width),
        mask_((uint64_t{1} << width) - 1) {
    refill();
    const uint32_t skip = static_cast<uint32_t>(first * width % 8);
    acc_ >>= skip;
    fill_ -= skip;
  }

  // The caller reads no value past the section's end.
  uint32_t get() {
    if (fill_ < width_) refill();
    const auto v = static_cast<uint32_t>(acc_ & mask_);
    acc_ >>= width_;
    fill_ -= width_;
    return v;
  }

 private:
  // Adds at least 8 bits while the section has bytes left (fill_ < 32 here).
  void refill() {
    if (pos_ + 4 <= size_) {
      uint32_t w;
      std::memcpy(&w, src_ + pos_, 4);
      acc_ |= uint64_t{w} << fill_;
      fill_ += 32;
      pos_ += 4;
      return;
    }
    while (fill_ <= 56 && pos_ < size_) {
      acc_ |= uint64_t{src_[pos_++]} << fill_;
      fill_ += 8;
    }
  }

  const uint8_t* src_;
  uint64_t size_;
  uint64_t pos_;
  uint32_t width_;
  uint64_t mask_;
  uint64_t acc_ = 0;
  uint32_t fill_ = 0;
};

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
