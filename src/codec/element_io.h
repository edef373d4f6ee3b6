// element_io.h: reading and writing elements of a dtype as u32 bit patterns.
#pragma once

#include <cstdint>
#include <cstring>

namespace nz::codec {

inline uint32_t load_element(const uint8_t* data, uint64_t index, uint32_t bytes) {
  if (bytes == 2) {
    uint16_t v;
    std::memcpy(&v, data + 2 * index, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, data + 4 * index, 4);
  return v;
}

inline void store_element(uint8_t* data, uint64_t index, uint32_t bytes, uint32_t value) {
  if (bytes == 2) {
    uint16_t v = static_cast<uint16_t>(value);
    std::memcpy(data + 2 * index, &v, 2);
  } else {
    std::memcpy(data + 4 * index, &value, 4);
  }
}

}  // namespace nz::codec
