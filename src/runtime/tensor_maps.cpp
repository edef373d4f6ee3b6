#include "runtime/tensor_maps.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

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

size_t TensorMapRegistry::record(const void* descriptor, CUdeviceptr address, size_t extent) {
  if (descriptor == nullptr) return 0;
  Entry e{};
  std::memcpy(e.bytes.data(), descriptor, kBytes);
  e.target = {address, extent};
  const uint64_t key = key_of(e.bytes.data());
  std::unique_lock lock(mutex_);
  e.used = records_.fetch_add(1, std::memory_order_relaxed) + 1;
  auto [first, last] = entries_.equal_range(key);
  for (auto it = first; it != last; ++it) {
    if (it->second.bytes == e.bytes) {
      it->second.target = e.target;
      it->second.used = e.used;
      return 0;
    }
  }
  const size_t forgotten = entries_.size() >= max_entries_ ? forget_least_used() : 0;
  entries_.emplace(key, e);
  count_.store(entries_.size(), std::memory_order_relaxed);
  return forgotten;
}

size_t TensorMapRegistry::forget_least_used() {
  std::vector<std::pair<uint64_t, std::unordered_multimap<uint64_t, Entry>::iterator>> by_use;
  by_use.reserve(entries_.size());
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    by_use.emplace_back(std::atomic_ref<uint64_t>(it->second.used).load(std::memory_order_relaxed), it);
  const size_t half = by_use.size() / 2;
  std::nth_element(by_use.begin(), by_use.begin() + static_cast<std::ptrdiff_t>(half), by_use.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < half; ++i) entries_.erase(by_use[i].second);
  return half;
}

std::optional<TensorMapRegistry::Target> TensorMapRegistry::find(const unsigned char* bytes) const {
  const uint64_t key = key_of(bytes);
  std::shared_lock lock(mutex_);
  auto [first, last] = entries_.equal_range(key);
  for (auto it = first; it != last; ++it) {
    if (std::memcmp(it->second.bytes.data(), bytes, kBytes) == 0) {
      // Recency in records: written only when it changed (many launching
      // threads find the same descriptors).
      std::atomic_ref<uint64_t> used(it->second.used);
      const uint64_t now = records_.load(std::memory_order_relaxed);
      if (used.load(std::memory_order_relaxed) != now) used.store(now, std::memory_order_relaxed);
      return it->second.target;
    }
  }
  return std::nullopt;
}

void TensorMapRegistry::clear() {
  std::unique_lock lock(mutex_);
  entries_.clear();
  count_.store(0, std::memory_order_relaxed);
}

}  // namespace nz::rt
