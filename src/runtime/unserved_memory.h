// unserved_memory.h: device memory the program holds that neuzip does not
// serve, and so never compresses: its own virtual memory (cuMemCreate +
// cuMemMap: PyTorch's expandable_segments:True, a library's pool) and
// stream-ordered allocations (cuMemAllocAsync: PyTorch's
// backend:cudaMallocAsync). Both are forwarded untouched, so a program whose
// weights live there runs as without neuzip and saves nothing; counted here
// so that such a run says so once, with the way out, instead of silently.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "runtime/hooks.h"  // UnservedKind

namespace nz::rt {

constexpr int kUnservedKinds = 2;

class UnservedMemory {
 public:
  // `key`: the handle (kProgramVmm) or the pointer (kStreamOrdered).
  // Returns the live bytes of that kind after the change.
  uint64_t add(UnservedKind kind, uint64_t key, size_t bytes) noexcept;
  // One more reference to a known key (cuMemRetainAllocationHandle returns
  // the mapped handle, which the program then releases once more).
  void retain(UnservedKind kind, uint64_t key) noexcept;
  // Drops one reference; the bytes go with the last. Without the lock when
  // nothing of that kind is counted (the stream-ordered frees of PyTorch's
  // async backend come at every tensor, mostly small ones never counted).
  // A handle released while still mapped (the driver keeps its memory until
  // the unmap) stops counting at the release: PyTorch unmaps first.
  void remove(UnservedKind kind, uint64_t key) noexcept;
  uint64_t live(UnservedKind kind) const noexcept;
  uint64_t peak(UnservedKind kind) const noexcept;
  uint64_t peak_total() const noexcept;

 private:
  mutable std::mutex mu_;
  struct Entry {
    size_t bytes = 0;
    uint32_t refs = 1;
  };
  std::unordered_map<uint64_t, Entry> entries_[kUnservedKinds];
  uint64_t live_[kUnservedKinds] = {};
  std::atomic<size_t> entries_count_[kUnservedKinds] = {};  // entries_[k].size(), for remove's fast path
  uint64_t peak_[kUnservedKinds] = {};
  uint64_t peak_total_ = 0;
};

// What PyTorch's allocator settings (comma-separated key:value pairs) ask
// for that neuzip cannot serve; nullopt when nothing. `conf` may be null.
std::optional<UnservedKind> pytorch_conf_unserved(const char* conf) noexcept;
// The variable PyTorch reads its settings from: PYTORCH_ALLOC_CONF when set
// (PyTorch 2.9 and later then ignore the older name), else
// PYTORCH_CUDA_ALLOC_CONF; null when neither is set. Sets *value.
const char* pytorch_conf_variable(const char** value) noexcept;

// The trace event's "reason" member naming `kind` (nztrace reads it).
const char* unserved_reason(UnservedKind kind) noexcept;

// The one line a run says when `bytes` of `kind` dominate its memory, or
// (with `env_name`) when PyTorch's configuration in that variable asks for
// such memory: what neuzip does with it, and the way out. May throw.
std::string unserved_notice(UnservedKind kind, uint64_t bytes, const char* env_name);

}  // namespace nz::rt
