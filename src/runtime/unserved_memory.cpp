// unserved_memory.cpp: counting memory neuzip does not serve (unserved_memory.h).
#include "runtime/unserved_memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace nz::rt {

uint64_t UnservedMemory::add(UnservedKind kind, uint64_t key, size_t bytes) noexcept {
  const int k = static_cast<int>(kind);
  std::lock_guard lock(mu_);
  try {
    auto [it, inserted] = entries_[k].try_emplace(key, Entry{bytes, 1});
    if (!inserted) {  // a key reused without our seeing its release: the new size counts
      live_[k] -= it->second.bytes;
      it->second = Entry{bytes, 1};
    }
    entries_count_[k].store(entries_[k].size(), std::memory_order_relaxed);
  } catch (...) {
    return live_[k];  // not counted: only a notice depends on it
  }
  live_[k] += bytes;
  peak_[k] = std::max(peak_[k], live_[k]);
  peak_total_ = std::max(peak_total_, live_[0] + live_[1]);
  return live_[k];
}

void UnservedMemory::retain(UnservedKind kind, uint64_t key) noexcept {
  const int k = static_cast<int>(kind);
  std::lock_guard lock(mu_);
  if (auto it = entries_[k].find(key); it != entries_[k].end()) ++it->second.refs;
}

void UnservedMemory::remove(UnservedKind kind, uint64_t key) noexcept {
  const int k = static_cast<int>(kind);
  if (entries_count_[k].load(std::memory_order_relaxed) == 0) return;
  std::lock_guard lock(mu_);
  if (auto it = entries_[k].find(key); it != entries_[k].end() && --it->second.refs == 0) {
    live_[k] -= it->second.bytes;
    entries_[k].erase(it);
    entries_count_[k].store(entries_[k].size(), std::memory_order_relaxed);
  }
}

uint64_t UnservedMemory::live(UnservedKind kind) const noexcept {
  std::lock_guard lock(mu_);
  return live_[static_cast<int>(kind)];
}

uint64_t UnservedMemory::peak(UnservedKind kind) const noexcept {
  std::lock_guard lock(mu_);
  return peak_[static_cast<int>(kind)];
}

uint64_t UnservedMemory::peak_total() const noexcept {
  std::lock_guard lock(mu_);
  return peak_total_;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

// PyTorch's allocator settings: "key:value" pairs separated by commas (a
// value may be a bracketed list with commas of its own, which never matches
// the two keys below). The later of repeated keys wins, as in PyTorch.
std::optional<UnservedKind> pytorch_conf_unserved(const char* conf) noexcept {
  if (conf == nullptr) return std::nullopt;
  bool expandable = false, async_backend = false;
  std::string_view rest(conf);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view pair = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t colon = pair.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = trim(pair.substr(0, colon)), value = trim(pair.substr(colon + 1));
    if (key == "expandable_segments") expandable = value == "True";  // PyTorch accepts True or False only
    if (key == "backend") async_backend = value == "cudaMallocAsync";
  }
  // The async backend takes precedence: PyTorch ignores expandable segments under it.
  if (async_backend) return UnservedKind::kStreamOrdered;
  if (expandable) return UnservedKind::kProgramVmm;
  return std::nullopt;
}

const char* unserved_reason(UnservedKind kind) noexcept {
  return kind == UnservedKind::kProgramVmm ? "\"reason\":\"program_vmm\"" : "\"reason\":\"stream_ordered\"";
}

const char* pytorch_conf_variable(const char** value) noexcept {
  for (const char* name : {"PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF"}) {
    if (const char* v = std::getenv(name)) {
      *value = v;
      return name;
    }
  }
  *value = nullptr;
  return nullptr;
}

std::string unserved_notice(UnservedKind kind, uint64_t bytes, const char* env_name) {
  const bool vmm = kind == UnservedKind::kProgramVmm;
  const char* setting = vmm ? "expandable_segments:True" : "backend:cudaMallocAsync";
  if (env_name != nullptr) {
    return fmt::format(
        "{} sets {}: PyTorch will {}, which neuzip passes through and never compresses "
        "(it compresses cuMemAlloc memory only); drop {} to let neuzip compress the weights",
        env_name, setting,
        vmm ? "map device memory itself (cuMemCreate/cuMemMap)" : "allocate from stream-ordered pools (cuMemAllocAsync)",
        setting);
  }
  return fmt::format(
      "the program holds {} MiB of {} ({}; PyTorch's {}{}), which neuzip passes through and never compresses "
      "(it compresses cuMemAlloc memory only); with PyTorch, drop {} from PYTORCH_ALLOC_CONF / "
      "PYTORCH_CUDA_ALLOC_CONF to let neuzip compress the weights",
      (bytes + (1u << 19)) >> 20, vmm ? "device memory it maps itself" : "stream-ordered device memory",
      vmm ? "cuMemCreate/cuMemMap" : "cuMemAllocAsync", setting, vmm ? ", or a library's own pool" : "", setting);
}

}  // namespace nz::rt
