#include "runtime/tensor_maps.h"

#include <mutex>

namespace nz::rt {

uint64_t TensorMapRegistry::key_of(const unsigned char* bytes) noexcept {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (size_t off = 0; off < kBytes; off += 8) {
    uint64_t w;
    std::memcpy(&w, bytes + off, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  return h;
}

void TensorMapRegistry::record(const void* descriptor, CUdeviceptr address, size_t extent) {
  if (descriptor == nullptr) return;
  Entry e{};
  std::memcpy(e.bytes.data(), descriptor, kBytes);
  e.target = {address, extent};
  const uint64_t key = key_of(e.bytes.data());
  std::unique_lock lock(mutex_);
  if (entries_.size() >= kMaxEntries) entries_.clear();
  auto [first, last] = entries_.equal_range(key);
  for (auto it = first; it != last; ++it) {
    if (it->second.bytes == e.bytes) {
      it->second.target = e.target;
      return;
    }
  }
  entries_.emplace(key, e);
  count_.store(entries_.size(), std::memory_order_relaxed);
}

std::optional<TensorMapRegistry::Target> TensorMapRegistry::find(const unsigned char* bytes) const {
  const uint64_t key = key_of(bytes);
  std::shared_lock lock(mutex_);
  auto [first, last] = entries_.equal_range(key);
  for (auto it = first; it != last; ++it) {
    if (std::memcmp(it->second.bytes.data(), bytes, kBytes) == 0) return it->second.target;
  }
  return std::nullopt;
}

void TensorMapRegistry::clear() {
  std::unique_lock lock(mutex_);
  entries_.clear();
  count_.store(0, std::memory_order_relaxed);
}

}  // namespace nz::rt
