// tensor_maps.h: the TMA descriptors the program built (cuTensorMapEncode*,
// cuTensorMapReplaceAddress), so that a launch passing one by value — how
// Hopper GEMMs in cuBLASLt and CUTLASS see their operands — is known to read
// the descriptor's global address. A real CUtensorMap is opaque (the address
// is not stored verbatim), so the launch scan matches whole 128-byte
// descriptors, at 64-byte aligned offsets of large parameters.
//
// A descriptor also says how far its kernel can read: TMA clips every access
// to the tensor's global dimensions (out-of-bounds elements are filled, never
// read), so the bytes a launch reaches through it are [address, address +
// extent) and not, as for a raw pointer, everything after the address in its
// allocation. The extent is recorded when it is known (tiled, not
// interleaved; a re-pointed descriptor keeps its old extent).
#pragma once

#include <cuda.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <shared_mutex>
#include <unordered_map>

namespace nz::rt {

class TensorMapRegistry {
 public:
  static constexpr size_t kBytes = sizeof(CUtensorMap);  // 128
  static constexpr size_t kAlign = 64;                    // CUtensorMap's alignment

  struct Target {
    CUdeviceptr address;
    size_t extent;  // bytes from address the descriptor can reach; 0: unknown
  };
  explicit TensorMapRegistry(size_t max_entries = size_t{1} << 16) : max_entries_(max_entries) {}
  // Returns how many descriptors it forgot to make room (see max_entries_).
  size_t record(const void* descriptor, CUdeviceptr address, size_t extent);
  // The target of the recorded descriptor equal to these 128 bytes.
  std::optional<Target> find(const unsigned char* bytes) const;
  bool empty() const noexcept { return count_.load(std::memory_order_relaxed) == 0; }
  size_t size() const noexcept { return count_.load(std::memory_order_relaxed); }
  void clear();

 private:
  using Bytes = std::array<unsigned char, kBytes>;
  struct Entry {
    Bytes bytes;
    Target target;
    // The record count when it was last recorded or found (atomic_ref: found
    // under the shared lock).
    mutable uint64_t used;
  };
  static uint64_t key_of(const unsigned char* bytes) noexcept;
  size_t forget_least_used();  // exclusive lock held

  // Programs build a few thousand descriptors at most (cuBLASLt caches them),
  // but one that encodes a descriptor per launch for changing activations
  // (new shapes, new addresses) could go on for ever: past this bound the
  // half used least recently is forgotten. Never all of them: a descriptor
  // a library built once and passes at every step (a weight's) is found at
  // every step, so it is among the recent half; forgotten, a launch passing
  // it would not be seen and its kernel would read compressed memory.
  const size_t max_entries_;
  mutable std::shared_mutex mutex_;
  std::unordered_multimap<uint64_t, Entry> entries_;
  std::atomic<size_t> count_{0};
  std::atomic<uint64_t> records_{0};
};

}  // namespace nz::rt
